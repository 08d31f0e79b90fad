"""What 'meson install' installs, staged for binding into the container."""

import json
import os
import subprocess

from common import log, run


def meson_options(builddir):
    p = run(['meson', 'introspect', '--buildoptions', builddir], timeout=120,
            stderr=subprocess.PIPE)
    return {o['name']: o['value'] for o in json.loads(p.stdout)}


def stage(build_root, source_root, workdir):
    """'meson install' into a staging tree from a build for /usr and /etc."""
    opts = meson_options(build_root)
    if opts.get('prefix') == '/usr' and opts.get('sysconfdir') == '/etc' and \
            opts.get('systemdsystemunitdir') != 'no':
        builddir = build_root
        log('# installing from %s (prefix /usr, sysconfdir /etc)' % builddir)
        install = ['meson', 'install', '-C', builddir, '--no-rebuild']
    else:
        # A build of the same source for the paths a distribution uses.
        builddir = os.path.join(build_root, 'tests', 'e2e', 'usr-build')
        log('# %s is configured for prefix %s, sysconfdir %s, unit directory %r; '
            'using the build %s for prefix /usr'
            % (build_root, opts.get('prefix'), opts.get('sysconfdir'),
               opts.get('systemdsystemunitdir'), builddir))
        if not os.path.isfile(os.path.join(builddir, 'build.ninja')):
            run(['meson', 'setup', builddir, source_root, '--prefix=/usr',
                 '--sysconfdir=/etc', '-Dtests=false', '-Dsystemd=enabled',
                 '-Dsystemdsystemunitdir='],
                timeout=300)
        run(['meson', 'compile', '-C', builddir], timeout=600)
        install = ['meson', 'install', '-C', builddir]
    staging = os.path.join(workdir, 'staging')
    run(install + ['--destdir', staging, '--quiet'], timeout=300)
    return builddir, staging


def staged_files(staging):
    """Installed path -> staged file, for every file meson installed."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(staging):
        for name in filenames + [d for d in dirnames
                                 if os.path.islink(os.path.join(dirpath, d))]:
            src = os.path.join(dirpath, name)
            files['/' + os.path.relpath(src, staging)] = src
    return files


def nspawn_escape(path):
    return path.replace('\\', '\\\\').replace(':', '\\:')
