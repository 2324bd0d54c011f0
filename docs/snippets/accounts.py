from converge import group, user

group("deploy", gid=2000)
group("docker", system=True)
user("deploy", uid=2000, gid="deploy", shell="/bin/bash", comment="Deploy user",
     manage_home=True, groups=["docker"])
user("sa-reader", system=True, shell="/usr/sbin/nologin")
group("backup", members=["deploy"], append=True)
