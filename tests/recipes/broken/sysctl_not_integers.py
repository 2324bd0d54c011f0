# error: {path}:4: sysctl[net.ipv4.ip_local_port_range]: value '32768 max' is not an integer (each field must be one)
from converge import sysctl

sysctl("net.ipv4.ip_local_port_range", [32768, "max"])
