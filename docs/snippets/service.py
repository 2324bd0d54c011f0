from converge import file, service

defaults = file("/etc/default/cron", content='READ_ENV="yes"\nEXTRA_OPTS="-L 15"\n',
                mode="0644")
service("cron", subscribes=[("restart", defaults)])    # enable, start; restart on change
