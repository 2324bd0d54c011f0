"""Kernel parameter names, values and sysctl.d files, shared by the sysctl resource.

Standard library only, Python 3.8: this module is shipped to targets.
"""

from __future__ import annotations

import os
import re
from typing import Any, List, Optional, Tuple

from ..errors import PropertyError
from ._validate import pattern

#: Directories systemd-sysctl and ``sysctl --system`` read at boot, first wins on a
#: file name; files are then applied in the order of their names.
CONF_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d",
             "/lib/sysctl.d")
#: /etc/sysctl.conf is read last by procps, and as 99-sysctl.conf by systemd.
SYSCTL_CONF = "/etc/sysctl.conf"

_PART = r"[A-Za-z0-9_@:+-]+(?:/[A-Za-z0-9_@:+-]+)*"
_KEY = pattern(r"%s(?:\.%s)*" % (_PART, _PART))


def dotted(key: str) -> str:
    """``net/ipv4/ip_forward`` becomes ``net.ipv4.ip_forward``; in slash notation a
    dot is part of a name (``eth0.100``), so it becomes a slash in dotted notation."""
    key = key.strip()
    slash, dot = key.find("/"), key.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        key = key.strip("/").translate(str.maketrans("./", "/."))
    return key


def check_key(value: Any, what: str = "key") -> str:
    """A kernel parameter name in dotted notation, or a PropertyError."""
    if not isinstance(value, str) or not _KEY.fullmatch(dotted(value)):
        raise PropertyError("key %r is not a kernel parameter name such as 'vm.panic_on_oom'"
                            % (value,))
    return dotted(value)


def proc_path(key: str) -> str:
    """``/proc/sys/net/ipv4/conf/eth0.100/rp_filter`` for ``net.ipv4.conf.eth0/100.rp_filter``."""
    return "/proc/sys/" + key.translate(str.maketrans("./", "/."))


def check_value(value: Any, what: str = "value") -> str:
    """1, "1", [32768, 60999] and "32768   60999" become their text form ("32768 60999")."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise PropertyError("value is an empty list; give at least one field")
        fields = [check_value(v) for v in value]
        for field in fields:
            if not field or " " in field:
                raise PropertyError("value field %r must be one word" % field)
        return " ".join(fields)
    if isinstance(value, bool):
        raise PropertyError("value %r is ambiguous for a kernel parameter; write 1 or 0" % value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value or "\0" in value:
            raise PropertyError("value %r contains a newline or NUL character" % value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PropertyError("value %r is not valid UTF-8 text" % value) from None
        return " ".join(value.split())
    raise PropertyError("value %r is not a number, a text or a list of fields" % (value,))


# Parameters known to take integers (one or more fields): the kernel refuses anything
# else with EINVAL, so a recipe is refused while compiling. Globs as systemd-sysctl's.
INTEGER_KEYS = (
    "vm.*", "fs.*",
    "kernel.panic", "kernel.panic_on_*", "kernel.sysrq", "kernel.pid_max", "kernel.threads-max",
    "kernel.shm*", "kernel.msg*", "kernel.sem", "kernel.kptr_restrict", "kernel.dmesg_restrict",
    "kernel.randomize_va_space", "kernel.yama.ptrace_scope", "kernel.perf_event_paranoid",
    "kernel.unprivileged_bpf_disabled", "kernel.printk", "kernel.core_uses_pid",
    "kernel.hung_task_*", "kernel.nmi_watchdog", "kernel.watchdog", "kernel.watchdog_thresh",
    "kernel.softlockup_panic", "kernel.ctrl-alt-del",
    "net.core.somaxconn", "net.core.*mem_*", "net.core.netdev_max_backlog",
    "net.ipv4.ip_forward", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_*mem",
    "net.ipv4.tcp_syncookies", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_*",
    "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_tw_reuse", "net.ipv4.icmp_*",
    "net.ipv4.conf.*", "net.ipv6.conf.*",
)
# ... except these, which take text.
TEXT_KEYS = ("vm.numa_zonelist_order", "fs.binfmt_misc.*", "net.ipv6.conf.*.stable_secret",
             "kernel.hostname", "kernel.domainname", "kernel.core_pattern", "kernel.modprobe",
             "kernel.poweroff_cmd", "kernel.random.*", "net.core.default_qdisc",
             "net.ipv4.tcp_*congestion_control", "net.ipv4.ip_local_reserved_ports")
# An integer as the kernel parses one (proc_dointvec: base 0, so 0x1f and 017 too).
_INTEGER = pattern(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


def _glob(key: str, glob: str) -> bool:
    """fnmatch.fnmatchcase(key, glob) for globs whose only wildcard is ``*`` (all of
    the lists above): fnmatch compiled a regular expression for each of them on
    every agent start."""
    parts = glob.split("*")
    if len(parts) == 1:
        return key == glob
    first, last = parts[0], parts[-1]
    if len(key) < len(first) + len(last) or not key.startswith(first) \
            or not key.endswith(last):
        return False
    at, end = len(first), len(key) - len(last)
    for part in parts[1:-1]:  # each at its leftmost place leaves the most room
        at = key.find(part, at, end)
        if at == -1:
            return False
        at += len(part)
    return True


def _known(key: str, globs: Tuple[str, ...]) -> bool:
    return any(_glob(key, glob) for glob in globs)


def integer_key(key: str) -> bool:
    """Whether the parameter is known to take integers only."""
    return _known(key, INTEGER_KEYS) and not _known(key, TEXT_KEYS)


def text_key(key: str) -> bool:
    """Whether the parameter is known to take text (a hostname that looks like a number
    is still text)."""
    return _known(key, TEXT_KEYS)


def integers(value: str) -> bool:
    """Every field of the value is an integer the kernel would take."""
    fields = value.split()
    return bool(fields) and all(_INTEGER.fullmatch(field) for field in fields)


def check_integers(key: str, value: str) -> None:
    """A PropertyError when the key takes integers and the value is not one (or a list)."""
    if integer_key(key) and not integers(value):
        raise PropertyError("value %r is not an integer%s" % (
            value, "" if len(value.split()) < 2 else " (each field must be one)"))


def same_value(a: Optional[str], b: Optional[str]) -> bool:
    """Compare field by field (tabs and spaces alike); decimal numbers as numbers."""
    if a is None or b is None:
        return a is b
    left, right = a.split(), b.split()
    if len(left) != len(right):
        return False
    for x, y in zip(left, right):  # noqa: B905 - strict= is not in Python 3.8
        if x != y and not (_is_int(x) and _is_int(y) and int(x) == int(y)):
            return False
    return True


def _is_int(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", text) is not None


def parse_line(line: str) -> Optional[Tuple[str, str]]:
    """(key, value) of one sysctl.d line, or None for comments and blank lines."""
    text = line.strip()
    if not text or text[0] in "#;" or "=" not in text:
        return None
    key, _, value = text.lstrip("-").partition("=")
    return dotted(key), value.strip()


def key_matches(pattern: str, key: str) -> bool:
    """systemd-sysctl accepts globs in keys (``net.ipv4.conf.*.rp_filter``)."""
    if pattern == key:
        return True
    if not any(c in pattern for c in "*?["):
        return False
    import fnmatch  # only for a file that has a glob (any of fnmatch's)

    return fnmatch.fnmatchcase(key, pattern)


def edit(text: Optional[str], key: str, value: Optional[str], comment: Optional[str]) -> str:
    """The file with this key set to ``value`` (or removed when None), other lines kept.

    The first line setting the key is replaced (with ``# comment`` above it), later
    ones are dropped, so the result is stable: edit(edit(t)) == edit(t).
    """
    lines = _lines(text)
    hits = [i for i, line in enumerate(lines) if (parse_line(line) or ("",))[0] == key]
    block = [] if value is None else (["# " + comment] if comment else []) + [
        "%s = %s" % (key, value)]
    if not hits:
        out = lines + block
    else:
        start = hits[0]
        if comment and start > 0 and lines[start - 1] == "# " + comment:
            start -= 1
        out = lines[:start] + block + [line for i, line in enumerate(lines)
                                       if i > hits[0] and i not in hits]
    return "\n".join(out) + "\n" if out else ""


def _lines(text: Optional[str]) -> List[str]:
    """Lines split at "\\n" only, as sysctl reads them (not at "\\x1e" or "\\u2028")."""
    out = (text or "").split("\n")
    return out[:-1] if out[-1] == "" else out


def settings(text: Optional[str], key: str) -> List[str]:
    """The values a file's lines give this key (globs included), in order."""
    found = []
    for line in _lines(text):
        parsed = parse_line(line)
        if parsed and key_matches(parsed[0], key):
            found.append(parsed[1])
    return found


def boot_order(system: Any) -> List[str]:
    """Every sysctl file read at boot, in the order it is applied."""
    chosen = {}
    for directory in CONF_DIRS:
        for name in system.listdir(directory):
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = directory + "/" + name
    order = [chosen[name] for name in sorted(chosen)]
    if system.exists(SYSCTL_CONF) and "99-sysctl.conf" not in chosen:
        order.append(SYSCTL_CONF)
    return order


def later_files(system: Any, path: str) -> Optional[List[str]]:
    """The files applied after ``path`` at boot (they win over it), or None when
    ``path`` is not read at boot at all."""
    order = boot_order(system)
    if path == SYSCTL_CONF and "/etc/sysctl.d/99-sysctl.conf" in order:
        path = "/etc/sysctl.d/99-sysctl.conf"
    if path in order:
        return order[order.index(path) + 1:]
    if path == SYSCTL_CONF:
        return []
    directory, name = os.path.split(path)
    if directory not in CONF_DIRS or not name.endswith(".conf"):
        return None
    return [p for p in order if p == SYSCTL_CONF or os.path.basename(p) > name]
