"""Network policy: which hosts and addresses an HTTP fetch may reach (the SSRF guard's rules)."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Sequence
from typing import Union

from ..errors import SourceError

# Union, not "|": these aliases are evaluated at import time, and Python 3.9 is supported.
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007

#: Always refused: "this network", link-local (cloud metadata at 169.254.169.254),
#: Alibaba Cloud's (100.100.100.200) and Oracle Cloud Classic's (192.0.0.192) metadata
#: addresses, multicast and reserved ranges, and the IPv6 unspecified, link-local,
#: AWS metadata (fd00:ec2::254) and multicast addresses.
ALWAYS_BLOCKED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "169.254.0.0/16", "100.100.100.200/32", "192.0.0.192/32", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "fe80::/10", "fd00:ec2::254/128", "ff00::/8",
)]

#: Host names of cloud instance-metadata services, refused by name before any DNS
#: query (an allow-list cannot unblock them): Google Cloud (``metadata`` is the short
#: name its resolvers answer), AWS, Azure, Tencent Cloud, IBM Cloud VPC, and Equinix
#: Metal, whose metadata names resolve to public addresses the address check cannot
#: tell apart. A sub-domain of a listed name is refused too.
METADATA_HOST_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog",
    "instance-data", "instance-data.ec2.internal",
    "metadata.azure.com", "metadata.azure.internal",
    "metadata.tencentyun.com",
    "api.metadata.cloud.ibm.com",
    "metadata.platformequinix.com", "metadata.packet.net",
})

#: AWS names the metadata service ``instance-data.<region>.compute.internal`` too.
_AWS_REGIONAL_METADATA = re.compile(r"instance-data\.[a-z0-9-]+\.compute\.internal")

#: Refused when ``block_private_networks`` is on: private, shared (CGNAT),
#: loopback and benchmarking ranges, IPv6 loopback and unique-local addresses.
PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "198.18.0.0/15", "::1/128", "fc00::/7",
)]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class NetworkPolicy:
    """Which resolved addresses a connection may use.

    Examples
    --------
    >>> policy = NetworkPolicy()
    >>> [str(a) for a in policy.permitted("localhost", [ipaddress.ip_address("127.0.0.1")])]
    ['127.0.0.1']
    >>> policy.permitted("metadata", [ipaddress.ip_address("169.254.169.254")])
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: blocked: metadata resolves to 169.254.169.254, a link-local or metadata address
    >>> policy.permitted("169.254.169.254", [ipaddress.ip_address("169.254.169.254")])
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: blocked: 169.254.169.254, a link-local or metadata address
    """

    def __init__(self, block_private_networks: bool = False, allowed_hosts: Sequence[str] = ()) -> None:
        self.block_private_networks = block_private_networks
        rules = [parse_host_rule(rule) for rule in allowed_hosts]
        self._names = [r for r in rules if isinstance(r, str)]
        self._networks = [r for r in rules if not isinstance(r, str)]

    def host_listed(self, host: str) -> bool:
        """Whether ``host`` (a name) matches a name rule of the allow-list."""
        host = host.lower().rstrip(".")
        return any(host == rule or (rule.startswith("*.") and fnmatch.fnmatchcase(host, rule))
                   for rule in self._names)

    def name_refusal(self, host: str) -> str | None:
        """Why ``host`` is refused by its name alone, before any DNS query is sent for it, or None.

        Cloud-metadata names are always refused; other names only by an allow-list
        of names (with no network rule, under which any name might resolve inside).

        Examples
        --------
        >>> NetworkPolicy().name_refusal("Metadata.Google.Internal.")
        'a cloud metadata host name'
        >>> NetworkPolicy(allowed_hosts=["*.example.com"]).name_refusal("example.org")
        'not in allowedHosts'
        >>> NetworkPolicy().name_refusal("images.example.com") is None
        True
        """
        if is_metadata_host_name(host):
            return "a cloud metadata host name"
        if self._names and not self._networks and not self.host_listed(host):
            return "not in allowedHosts"
        return None

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why ``address`` (resolved from ``host``) is refused, or None."""
        candidates = [address] + _embedded_ipv4(address)
        if any(a in net for a in candidates for net in ALWAYS_BLOCKED_NETWORKS if a.version == net.version):
            return "a link-local or metadata address"
        if self.block_private_networks and any(
                a in net for a in candidates for net in PRIVATE_NETWORKS if a.version == net.version):
            return "a private or loopback address (blockPrivateNetworks)"
        if (self._names or self._networks) and not self.host_listed(host) and not any(
                a in net for a in candidates for net in self._networks if a.version == net.version):
            return "not in allowedHosts"
        return None

    def permitted(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """The addresses of ``host`` that may be used; raises ``SourceError("blocked")`` if none."""
        allowed = []
        first_refusal = ""
        for address in addresses:
            why = self.refusal(host, address)
            if why is None:
                allowed.append(address)
            elif not first_refusal:
                first_refusal = f"{address}, {why}"
        if not allowed:
            if not first_refusal:
                raise SourceError("blocked", f"{host} has no address")
            literal = len(addresses) == 1 and str(addresses[0]) == host.strip("[]")
            raise SourceError("blocked", first_refusal if literal else f"{host} resolves to {first_refusal}")
        return allowed


def parse_host_rule(rule: str) -> str | IPNetwork:
    """Parse one ``allowedHosts`` entry: a host name, ``*.domain``, an IP address or network.

    Examples
    --------
    >>> parse_host_rule("*.Example.com"), parse_host_rule("10.1.0.0/16")
    ('*.example.com', IPv4Network('10.1.0.0/16'))
    >>> parse_host_rule("http://example.com")
    Traceback (most recent call last):
    ...
    ValueError: allowedHosts entry 'http://example.com' is not a host name, *.domain pattern, IP address or network.
    """
    if not isinstance(rule, str):
        raise TypeError(f"allowedHosts entries must be strings, got {type(rule).__name__}: {rule!r}")
    text = rule.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    label = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
    if re.fullmatch(rf"(\*\.)?{label}(\.{label})*", text):
        return text
    raise ValueError(
        f"allowedHosts entry {rule!r} is not a host name, *.domain pattern, IP address or network."
    )


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """IPv4 addresses an IPv6 address reaches through mapping, 6to4 or NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[IPAddress] = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_metadata_host_name(host: str) -> bool:
    """Whether ``host`` names a cloud instance-metadata service (or a sub-domain of one).

    Examples
    --------
    >>> [is_metadata_host_name(h) for h in ("metadata.goog", "INSTANCE-DATA.", "x.metadata.google.internal",
    ...                                     "instance-data.eu-west-1.compute.internal", "metadata.example.com")]
    [True, True, True, True, False]
    """
    name = host.lower().strip("[]").rstrip(".")
    if _AWS_REGIONAL_METADATA.fullmatch(name):
        return True
    labels = name.split(".")
    return any(".".join(labels[i:]) in METADATA_HOST_NAMES for i in range(len(labels)))
