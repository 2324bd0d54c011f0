# W1 "seed" for Puppet: `puppet apply --detailed-exitcodes manifest.pp`.

# -1000 where root may lower scores; lab nodes refuse negative values.
$oom_score_adj = 0
$sysctls = {
  'net.ipv4.ip_forward' => '1',
  'net.core.somaxconn'  => '1024',
  'vm.panic_on_oom'     => '1',
}

file { '/etc/motd':
  content => "Hello Tunnelix\n",
  mode    => '0644',
}

file { '/etc/bench':
  ensure => directory,
  mode   => '0755',
}

Integer[1, 20].each |$i| {
  $n = sprintf('%02d', $i)
  $weight = $i * 7
  file { "/etc/bench/w1-${n}.conf":
    content => "# w1 config file ${i}\nname = item-${i}\nweight = ${weight}\n",
    mode    => '0644',
  }
}

# Puppet has no sysctl type in core: the file, then check-and-set per key.
file { '/etc/sysctl.d/60-bench.conf':
  content => $sysctls.map |$key, $value| { "${key} = ${value}\n" }.join(''),
  mode    => '0644',
}
$sysctls.each |$key, $value| {
  exec { "sysctl ${key}":
    command  => "sysctl -q -w ${key}=${value}",
    unless   => "test \"\$(sysctl -n ${key})\" = ${value}",
    path     => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'],
    provider => shell,
  }
}

# Puppet's cron type edits crontabs; /etc/cron.d is a plain file.
file { '/etc/cron.d/sysstat':
  content => "*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n",
  mode    => '0644',
}

package { 'bench-tool':
  ensure => installed,
}

# No type for oom_score_adj: check, then set.
exec { 'sshd shielded from the OOM killer':
  command  => "for pid in \$(pgrep -f '[/]usr/sbin/sshd'); do echo ${oom_score_adj} > /proc/\$pid/oom_score_adj; done",
  unless   => "for pid in \$(pgrep -f '[/]usr/sbin/sshd'); do [ \"\$(cat /proc/\$pid/oom_score_adj)\" = ${oom_score_adj} ] || exit 1; done",
  path     => ['/usr/bin', '/bin'],
  provider => shell,
}
