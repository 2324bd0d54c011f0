# W2 "many files" for Puppet: 200 files from one EPP template (module `bench`):
# `puppet apply --modulepath modules --detailed-exitcodes manifest.pp`.

file { '/etc/bench-w2':
  ensure => directory,
  mode   => '0755',
}

Integer[1, 200].each |$i| {
  $n = sprintf('%03d', $i)
  file { "/etc/bench-w2/worker-${n}.conf":
    content => epp('bench/file.conf.epp', { 'index' => $i }),
    mode    => '0644',
  }
}
