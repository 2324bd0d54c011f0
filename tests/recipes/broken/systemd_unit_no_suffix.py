# error: {path}:4: systemd_unit[hello]: unit_name 'hello' is not a unit file name such as app.service (letters, digits, ':', '_', '.', '@', '-', ending in a unit type: .service, .socket, .timer, .path, .mount, .automount, .target, .slice, .swap, .device, .scope)
from converge import systemd_unit

systemd_unit("hello", "[Service]\nExecStart=/bin/true\n")
