"""A Python client of the tests: urllib.request with ProxyDigestAuthHandler through an
authenticating HTTP proxy.

    python3 urllib_proxy_digest.py PROXY_PORT USER PASSWORD URL

Prints the response status and the body's first line; on an HTTP error prints its status and
`Proxy-Authenticate` lines; exits 0 either way (the test reads the output), 2 on another error.
"""

import sys
import urllib.error
import urllib.request


def main() -> int:
    port, user, password, url = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    proxy = f"http://127.0.0.1:{port}"
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    # ProxyDigestAuthHandler looks the password up by the request's URL, not the proxy's
    # (AbstractDigestAuthHandler.get_authorization: find_user_password(realm, req.full_url)),
    # so the proxy's password must be registered for the target too.
    passwords.add_password(None, proxy, user, password)
    passwords.add_password(None, url, user, password)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy, "https": proxy}),
        urllib.request.ProxyDigestAuthHandler(passwords),
    )
    try:
        with opener.open(url, timeout=10) as response:
            print(response.status)
            print(response.readline().decode("utf-8", "replace").rstrip("\r\n"))
    except urllib.error.HTTPError as error:
        print(error.code)
        for value in error.headers.get_all("Proxy-Authenticate") or []:
            print(value)
    except Exception as error:  # noqa: BLE001 - report any failure to the test
        print(f"error: {error!r}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
