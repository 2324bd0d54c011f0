"""web_hardening: HSTS and other security headers for nginx and apache (README.md)."""

from converge import attrs, execute, node, service, template

conf = attrs.web_hardening
hsts = "max-age=%d" % int(conf.hsts_max_age)
if conf.hsts_include_subdomains:
    hsts += "; includeSubDomains"
if conf.hsts_preload:
    hsts += "; preload"
debian = node.platform_family == "debian"

if "nginx" in conf.servers:
    nginx = service("nginx", action="nothing")
    template("/etc/nginx/conf.d/security-headers.conf", source="nginx.conf.j2",
             variables={"hsts": hsts}, mode="0644", notifies=nginx.reload,
             only_if=["test", "-x", "/usr/sbin/nginx"])

if "apache" in conf.servers:
    apache = service("apache2" if debian else "httpd", action="nothing")
    if debian:
        template("/etc/apache2/conf-available/security-headers.conf", source="apache.conf.j2",
                 variables={"hsts": hsts}, mode="0644", notifies=apache.reload,
                 only_if=["test", "-x", "/usr/sbin/apache2"])
        execute(["a2enmod", "-q", "headers"], creates="/etc/apache2/mods-enabled/headers.load",
                only_if=["test", "-x", "/usr/sbin/apache2"], notifies=apache.reload)
        execute(["a2enconf", "-q", "security-headers"],
                creates="/etc/apache2/conf-enabled/security-headers.conf",
                only_if=["test", "-x", "/usr/sbin/apache2"], notifies=apache.reload)
    else:
        template("/etc/httpd/conf.d/security-headers.conf", source="apache.conf.j2",
                 variables={"hsts": hsts}, mode="0644", notifies=apache.reload,
                 only_if=["test", "-x", "/usr/sbin/httpd"])
