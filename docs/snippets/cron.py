from converge import cron

# /etc/cron.d/sysstat-collect, with the user column
cron("sysstat-collect", minute="*/10", user="root", cron_file="sysstat-collect",
     command="/usr/lib/sysstat/debian-sa1 1 1")
# root's own crontab, edited with crontab -u root
cron("tmp-cleanup", hour=3, minute=30, weekday="1-5",
     command="find /tmp -type f -mtime +7 -delete")
