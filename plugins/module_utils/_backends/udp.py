# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The udp backend: flannel's userspace TUN encapsulation, run by a daemon of our own.

The daemon (udp_daemon.py beside this file, docs/udp.md) owns the TUN device, its /32 address
and the route of the overlay network. This backend writes its configuration, installs its
launcher and unit, and keeps overlay-mesh-udp.service running: a changed peer list is a reload
(SIGHUP: the device stays, traffic to the other peers never stops), a changed daemon or unit a
restart.
"""

from __future__ import annotations

import json
import os

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _netlink_validate as validate
from ansible_collections.overlay.mesh.plugins.module_utils._backends import udp_daemon
from ansible_collections.overlay.mesh.plugins.module_utils._backends.base import Backend as BaseBackend
from ansible_collections.overlay.mesh.plugins.module_utils._netlink_changes import EngineError

# installed with the engine (_node_apply): the daemon the unit runs
ENGINE_MODULES = ('_backends.udp_daemon', '_backends.udp_packets')
NAME = 'udp'
UNIT = 'overlay-mesh-udp.service'
CONFIG_FILE = os.path.join(_host.STATE_DIR, 'udp.json')
LAUNCHER = os.path.join(_host.LIB_DIR, 'overlay-mesh-udp')
DAEMON_MODULE = 'ansible_collections.overlay.mesh.plugins.module_utils._backends.udp_daemon'
# a change to any of these installed modules restarts the daemon
DAEMON_MODULES = (DAEMON_MODULE, DAEMON_MODULE.replace('udp_daemon', 'udp_packets'))

LAUNCHER_TEXT = '''#!/usr/bin/python3
# overlay.mesh udp backend daemon (installed by overlay.mesh.node; the code is in %(lib)s).
import sys
sys.dont_write_bytecode = True  # /usr/lib/overlay-mesh holds exactly what overlay.mesh.node installed
sys.path.insert(0, %(lib)r)
from %(module)s import main  # noqa: E402
sys.exit(main())
''' % {'lib': _host.LIB_DIR, 'module': DAEMON_MODULE}

UNIT_TEXT = '''# Written by overlay.mesh (udp backend). Reload (SIGHUP) swaps the peer table; the device stays.
[Unit]
Description=overlay.mesh udp backend data path (%(device)s)
Wants=network-online.target
After=network-online.target overlay-mesh.service
Before=containerd.service docker.service crio.service kubelet.service podman.service

[Service]
Type=notify
NotifyAccess=main
ExecStartPre=/usr/bin/python3 %(launcher)s --check %(config)s
ExecStart=/usr/bin/python3 %(launcher)s %(config)s
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
TimeoutStopSec=10
Restart=on-failure
RestartSec=2
RuntimeDirectory=overlay-mesh
RuntimeDirectoryPreserve=yes
# The counters: systemctl kill -s USR1 %(unit)s; cat /run/overlay-mesh/udp-stats.json
DeviceAllow=/dev/net/tun rw
CapabilityBoundingSet=CAP_NET_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
'''


class Backend(BaseBackend):
    name = NAME
    OPTIONS = {
        'port': {'type': 'int', 'default': udp_daemon.DEFAULT_PORT, 'check': validate.port},
        'device': {'type': 'str', 'default': udp_daemon.DEFAULT_DEVICE, 'check': validate.ifname},
    }
    OVERHEAD = udp_daemon.OVERHEAD
    GROUP_OPTIONS = ('port',)

    @classmethod
    def release_0_1_device(cls, state):
        return udp_daemon.DEFAULT_DEVICE  # release 0.1's udp device had no other name

    def ports(self):
        return [('udp', self.params['port'])]

    def daemon_config(self, node):
        return {'device': self.device, 'address': str(node.vtep_address), 'subnet': str(node.subnet),
                'network': str(node.network), 'mtu': node.mtu, 'port': self.params['port'],
                'local': str(node.underlay_address),
                'peers': [{'subnet': peer['subnet'], 'underlay': peer['underlay']} for peer in node.peers]}

    def apply(self, node, host):
        config = self.daemon_config(node)
        try:
            udp_daemon.load_config_dict(json.loads(json.dumps(config)), CONFIG_FILE)
        except ValueError as exc:
            raise EngineError('udp backend: %s' % exc)
        running = self._running_config(host)
        launcher_changed = host.ensure_file(LAUNCHER, LAUNCHER_TEXT, mode=0o755)
        unit_changed = host.ensure_unit(UNIT, UNIT_TEXT % {'device': self.device, 'launcher': LAUNCHER,
                                                           'config': CONFIG_FILE, 'unit': UNIT})
        config_changed = host.ensure_file(CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + '\n', view=_host.json_lines)
        if host.boot:
            return  # systemd starts the daemon after overlay-mesh.service
        # a reload only swaps the peer table; device, addresses, MTU and port need a restart
        fixed_changed = running is not None and any(running.get(key) != config.get(key) for key in udp_daemon.RESTART_KEYS
                                                    if key in config)
        daemon_changed = launcher_changed or unit_changed or fixed_changed or bool(host.installed_changes.intersection(DAEMON_MODULES))
        active = os.path.exists(os.path.join(_host.UNIT_DIR, UNIT)) and \
            host.systemctl('is-active', '--quiet', UNIT, check=False).returncode == 0
        if not active or daemon_changed:
            action = 'restart' if active else 'start'
        elif config_changed:
            action = 'reload'
        else:
            host.report.unchanged({'type': 'service', 'name': UNIT, 'detail': 'running'})
            return
        host.report.object('updated', {'type': 'service', 'name': UNIT, 'detail': action + 'ed'})
        if not host.check_mode:
            host.systemctl(action, UNIT)

    @staticmethod
    def _running_config(host):
        """The configuration the daemon runs with (the file as it was before this run), or None."""
        text = host.read(CONFIG_FILE)
        try:
            config = json.loads(text) if text else None
        except ValueError:
            return None
        return config if isinstance(config, dict) else None

    def teardown(self, host, record, strict=False):
        """Stopping the daemon removes its TUN device and the route of the overlay network (the unit,
        its configuration and launcher have names of our own: always ours)."""
        host.remove_unit(UNIT, stop=True)
        host.remove(CONFIG_FILE)
        host.remove(LAUNCHER)
