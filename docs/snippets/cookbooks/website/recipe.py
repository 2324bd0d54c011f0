"""website: a cookbook whose own type, site, is written with other resources."""

from converge import attrs, site

for name, port in sorted(attrs.website.sites.items()):
    site(name, port=port)
