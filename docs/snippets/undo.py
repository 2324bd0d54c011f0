from converge import file

file("/etc/motd", content="Hello Tunnelix\n")
file("/etc/app.conf", content="listen = 8080\n")
