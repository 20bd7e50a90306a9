"""A distribution registry's HTTP API, with the standard library only.

registry_up asks `/v2/` whether the registry answers; push asks
`/v2/<repository>/manifests/<tag>` which image a tag holds. Like Docker, an insecure
registry (on a loopback address, or one the engine lists as insecure: the caller
says) is tried over https without verifying its certificate, then over plain http;
any other is https, verified (system CAs plus Docker's /etc/docker/certs.d/<host:port>/ca.crt).
http.client and ssl are imported where used: step modules import this one when
doit loads the workflows, and the no-op path must not pay for them (~15 ms).
"""
import base64
import ipaddress
import json
import os
import re
import urllib.parse

from .errors import StepFailed

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
CERTS_D = "/etc/docker/certs.d"


class RegistryUnreachable(StepFailed):
    """Nothing answered at the registry's address (worth retrying)."""


class RegistryDenied(StepFailed):
    """The registry refused the credentials (never worth retrying)."""


def is_loopback(address):
    host = split_address(address)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolves_into(address, networks):
    """True when the host of `address` is, or resolves to, an address in one of
    `networks` (CIDR strings such as the engine's InsecureRegistryCIDRs)."""
    import socket

    host = split_address(address)[0]
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
        except (OSError, UnicodeError, ValueError):
            return False
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network, strict=False))
        except ValueError:
            continue
    return any(ip in network for ip in addresses for network in parsed)


def split_address(address):
    """("host", port) of "host[:port]"; the port defaults to 443."""
    url = urllib.parse.urlsplit("//" + address)
    return url.hostname, url.port or 443


def v2_status(address, tls, timeout=2.0):
    """The status of GET /v2/ (200, or 401 with auth on), or None when nothing answers."""
    import http.client

    host, port = split_address(address)
    connection = _connection(host, port, tls, verify=False, timeout=timeout)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class Registry:
    """One registry, e.g. `localhost:5000`; `credentials` is (username, password) or None."""

    def __init__(self, address, credentials=None, timeout=10.0, insecure=None):
        self.address = address
        self.credentials = credentials
        self.timeout = timeout
        # As the engine: an insecure registry (loopback, or listed by the engine) is tried
        # over https without verifying it, then over plain http; any other is verified https.
        self.insecure = is_loopback(address) if insecure is None else insecure
        self._scheme = None
        self._token = None

    def manifest(self, repository, tag):
        """(digest, manifest dict) of repository:tag, or None when the registry has no such tag."""
        status, headers, body = self._get("/v2/%s/manifests/%s" % (repository, tag),
                                          {"Accept": ", ".join(MANIFEST_TYPES)}, repository)
        if status == 404:
            return None
        if status != 200:
            raise StepFailed("registry %s: GET manifest %s:%s answered %d: %s"
                             % (self.address, repository, tag, status, _error_text(body)))
        digest = headers.get("Docker-Content-Digest")
        if not digest:
            import hashlib

            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return digest, json.loads(body)

    def _get(self, path, headers, repository):
        status, response_headers, body = self._request(path, headers)
        if status == 401:
            challenge = response_headers.get("WWW-Authenticate", "")
            if self.credentials is None:
                raise RegistryDenied("registry %s: authentication required and no credentials given "
                                     "(set username_env/password_env, or `docker login %s`)"
                                     % (self.address, self.address))
            headers = dict(headers, Authorization=self._authorization(challenge, repository))
            status, response_headers, body = self._request(path, headers)
            if status == 401:
                raise RegistryDenied("registry %s: unauthorized: the registry refused the credentials "
                                     "of user %r" % (self.address, self.credentials[0]))
        return status, response_headers, body

    def _authorization(self, challenge, repository):
        import http.client

        basic = "Basic " + base64.b64encode(("%s:%s" % self.credentials).encode()).decode()
        if not challenge.lower().startswith("bearer"):
            return basic
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        try:
            realm = urllib.parse.urlsplit(params.get("realm", ""))
            realm_address = "%s:%d" % (realm.hostname, realm.port or (443 if realm.scheme == "https" else 80))
        except ValueError:
            realm = realm_address = None
        if realm is None or realm.scheme not in ("https", "http") or not realm.hostname:
            raise StepFailed("registry %s: its token realm %r is no http(s) address"
                             % (self.address, params.get("realm", "")))
        # The password goes to the realm: never in clear text over a network, and over
        # TLS verified for the realm's own host unless that host is this machine.
        realm_is_loopback = is_loopback(realm_address)
        if realm.scheme != "https" and not realm_is_loopback:
            raise RegistryDenied("registry %s: its token realm %s is plain http on another host; the credentials "
                                 "are not sent there" % (self.address, realm.geturl()))
        query = urllib.parse.urlencode({"service": params.get("service", ""),
                                        "scope": "repository:%s:pull" % repository})
        connection = _connection(realm.hostname, split_address(realm_address)[1], realm.scheme == "https",
                                 verify=not realm_is_loopback, timeout=self.timeout)
        try:
            connection.request("GET", "%s?%s" % (realm.path or "/", query), headers={"Authorization": basic})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise RegistryUnreachable("token service of %s: %s" % (self.address, err)) from None
        finally:
            connection.close()
        if response.status in (401, 403):
            raise RegistryDenied("registry %s: unauthorized: its token service refused the credentials "
                                 "of user %r" % (self.address, self.credentials[0]))
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise StepFailed("registry %s: its token service %s answered %d without a token: %s"
                             % (self.address, realm.geturl(), response.status, _error_text(body)))
        return "Bearer " + token

    def _request(self, path, headers):
        import http.client
        import ssl

        schemes = [self._scheme] if self._scheme else (["https", "http"] if self.insecure else ["https"])
        host, port = split_address(self.address)
        last_error = None
        for scheme in schemes:
            connection = _connection(host, port, scheme == "https", verify=not self.insecure,
                                     timeout=self.timeout, ca_file=_docker_ca(self.address))
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                self._scheme = scheme
                return response.status, response.headers, body
            except ssl.SSLError as err:
                last_error = err  # a plain-http registry: try http next (loopback only)
            except (OSError, http.client.HTTPException) as err:
                last_error = err
                if not isinstance(err, http.client.RemoteDisconnected):
                    break
            finally:
                connection.close()
        reason = getattr(last_error, "strerror", None) or str(last_error) or type(last_error).__name__
        raise RegistryUnreachable("registry %s does not answer (%s)" % (self.address, reason))


def _connection(host, port, tls, verify, timeout, ca_file=None):
    import http.client
    import ssl

    if not tls:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    if verify:
        context = ssl.create_default_context(cafile=ca_file)
    else:
        # Not create_default_context(): it loads the system's CAs (~30 ms), which an
        # unverified connection never reads.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)


def _docker_ca(address):
    path = os.path.join(CERTS_D, address, "ca.crt")
    return path if os.path.isfile(path) else None


def _error_text(body):
    """The registry's error list as one line, else the start of the body, as text."""
    try:
        errors = json.loads(body).get("errors") or []
        joined = "; ".join("%s: %s" % (e.get("code", ""), e.get("message", "")) for e in errors)
    except (ValueError, AttributeError, TypeError):
        joined = ""
    return joined or body[:200].decode(errors="replace")

