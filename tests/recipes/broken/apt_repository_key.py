# error: {path}:4: apt_repository[tools]: key is not an OpenPGP public key: its armor checksum (CRC-24) does not match: the key was damaged or cut when copied
from converge import apt_repository

apt_repository("tools", "https://apt.example.com/debian", key="""
-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw/ldxYJKwYBBAHaRw8BAQdAsjCUzNlVpph1JL8z+2lq1S8njHjkD8rQbxHn
zmmaUL60JGNvbnZlcmdlIHRlc3QgPHRlc3RAZXhhbXBsZS5pbnZhbGlkPoiQBBMW
CAA4FiEEpNONmVDBbozzfT0kVpiH1rBlzRMFAmsP5XcCGwMFCwkIBwIGFQoJCAsC
BBYCAwECHgECF4AACgkQVpiH1rBlzRNt5gD/d2+Cqqb9vn23H8XYCzjpwbfMQNUj
aoOjRPdro6zulEQBAJC0g2gOmwDAee6hJS8mQszX/OA6g7blGFUYTnkEnuIC
=AAAA
-----END PGP PUBLIC KEY BLOCK-----
""")
