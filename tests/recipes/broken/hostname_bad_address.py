# error: {path}:4: hostname[db1]: ipaddress '10.0.0.300' is not an IPv4 or IPv6 address
from converge import hostname

hostname("db1", ipaddress="10.0.0.300")
