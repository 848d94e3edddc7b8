"""Where images live: tables of image files, and tables spread so that every core fetches.

``read_images`` lists a folder, a glob (``photos/**/*.jpg``) or a list of paths,
local or on any Hadoop file system Spark reads, into a table the image stages
take as is; ``spread`` repartitions a table with few partitions (a one-file CSV
of URLs) so that every core of the cluster fetches.
"""

from .images import IMAGE_SUFFIXES, read_images, split_glob
from .partitions import default_parallelism, spread

__all__ = ["IMAGE_SUFFIXES", "read_images", "split_glob", "spread", "default_parallelism"]
