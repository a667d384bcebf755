# Copyright (c) 2026 overlay.mesh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's files: bad paths refused by the spec (naming the role variable on the controller), and a file the
collection does not own never written over nor removed (real files in a temporary directory)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.overlay.mesh.plugins.module_utils import _host
from ansible_collections.overlay.mesh.plugins.module_utils import _node_apply
from ansible_collections.overlay.mesh.plugins.module_utils import _node_files as files
from ansible_collections.overlay.mesh.plugins.module_utils import _node_spec as spec
from ansible_collections.overlay.mesh.plugins.module_utils._spec import SpecError
from ansible_collections.overlay.mesh.plugins.plugin_utils import _node_inputs as inputs

CONTRACT = {'underlay': {'address': '198.18.0.11', 'interface': 'eth0', 'mtu': 1500}, 'network': '10.244.0.0/16',
            'subnet': '10.244.1.0/24', 'backend': {'type': 'vxlan'}}
FLANNELD_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n'
PODMAN_CONFLIST = json.dumps({'cniVersion': '0.4.0', 'name': 'podman', 'plugins': [
    {'type': 'bridge', 'bridge': 'cni-podman0', 'isGateway': True, 'ipMasq': True, 'hairpinMode': True,
     'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.88.0.0/16', 'gateway': '10.88.0.1'}]]}},
    {'type': 'portmap', 'capabilities': {'portMappings': True}}, {'type': 'firewall'}, {'type': 'tuning'}]})
FOREIGN_ENV = '# the user\'s own settings\nPATH=/opt/bin:/usr/bin\nLANG=C.UTF-8\n'


def node(tmp_path, **changes):
    raw = dict(CONTRACT, subnet_env=str(tmp_path / 'run' / 'subnet.env'),
               cni={'conf_dir': str(tmp_path / 'cni'), 'network_name': 'overlay-mesh'})
    raw.update(changes)
    return spec.normalize(raw, machine_id='0123456789abcdef0123456789abcdef')


def problems(**changes):
    with pytest.raises(SpecError) as info:
        spec.normalize(dict(CONTRACT, **changes))
    return dict(info.value.problems)


@pytest.mark.parametrize('path, why', [
    ('run/flannel/subnet.env', 'is not an absolute path'),
    ('/run/flannel/../../etc/passwd', "has a '..' component"),
    ('/', 'is the root directory'),
    ('//', 'is the root directory'),
    ('/run/flannel/sub\0net.env', 'contains a NUL character'),
])
def test_every_path_option_must_be_absolute_and_normalised(path, why):
    assert why in problems(subnet_env=path)['subnet_env']
    assert why in problems(cni={'conf_dir': path})['cni.conf_dir']
    agent = {'enabled': True, 'name': 'node1', 'endpoints': ['https://198.18.0.1:2379'], 'ca_file': path, 'cert_file': path,
             'key_file': path, 'password_file': path}
    found = problems(agent=agent)
    for option in ('ca_file', 'cert_file', 'key_file', 'password_file'):
        assert why in found['agent.' + option]


@pytest.mark.parametrize('name', ['', '-mesh', '.mesh', 'mesh/../x', 'mesh net', 'mésh', 'mesh:1'])
def test_the_cni_network_name_is_cnis(name):
    assert 'is not a CNI network name' in problems(cni={'network_name': name})['cni.network_name']


def test_a_trailing_slash_and_doubled_separators_are_dropped_not_refused():
    # the same place; a node.json saved by a release that allowed them stays readable
    data = spec.normalize(dict(CONTRACT, subnet_env='/run//flannel/./subnet.env', cni={'conf_dir': '/etc/cni/net.d/'})).data
    assert (data['subnet_env'], data['cni']['conf_dir']) == ('/run/flannel/subnet.env', '/etc/cni/net.d')


def test_good_paths_and_names_pass():
    data = spec.normalize(dict(CONTRACT, subnet_env='/var/lib/flannel/subnet.env',
                               cni={'conf_dir': '/etc/cni/net.d', 'network_name': 'Mesh_1.a-b'})).data
    assert data['subnet_env'] == '/var/lib/flannel/subnet.env' and data['cni']['network_name'] == 'Mesh_1.a-b'


@pytest.mark.parametrize('variable, value, expected', [
    ('mesh_node_subnet_env_file', 'subnet.env', "mesh_node_subnet_env_file: 'subnet.env' is not an absolute path"),
    ('mesh_node_subnet_env_file', '/run/flannel/../x', "mesh_node_subnet_env_file: '/run/flannel/../x' has a '..' component"),
    ('mesh_node_cni_conf_dir', 'etc/cni/net.d', "mesh_node_cni_conf_dir: 'etc/cni/net.d' is not an absolute path"),
    ('mesh_node_cni_network_name', '../x', "mesh_node_cni_network_name: '../x' is not a CNI network name"),
])
def test_the_controller_names_the_host_and_the_role_variable(variable, value, expected):
    with pytest.raises(inputs.InputError) as info:
        inputs.node_contract({'mesh_node_network': '10.244.0.0/16', variable: value}, 'node4')
    assert str(info.value).startswith('node4: ') and expected in str(info.value)


def test_what_is_ours():
    assert files.subnet_env_is_ours(FLANNELD_ENV) and files.subnet_env_is_ours('# comment\n\n' + FLANNELD_ENV)
    assert files.subnet_env_is_ours(files.subnet_env(spec.normalize(CONTRACT).network, spec.normalize(CONTRACT).subnet, 1450))
    assert not files.subnet_env_is_ours(FOREIGN_ENV)
    assert not files.subnet_env_is_ours(FLANNELD_ENV + 'export PATH=/x\n')
    ours = spec.normalize(CONTRACT, machine_id='0123456789abcdef0123456789abcdef')
    assert files.conflist_is_ours(files.cni_conflist(ours), ours.data)
    podman = dict(json.loads(PODMAN_CONFLIST), name='overlay-mesh')  # another tool's network of the same name
    assert not files.conflist_is_ours(json.dumps(podman), ours.data)
    assert not files.conflist_is_ours(files.cni_conflist(ours), {'cni': {'network_name': 'other'}})
    for text in ('not json', '[]', '{"name": "overlay-mesh"}', '{"name": "overlay-mesh", "plugins": [1]}'):
        assert not files.conflist_is_ours(text, ours.data)


def test_a_foreign_or_misplaced_file_is_refused_in_check_mode_and_for_real_before_any_change(tmp_path):
    host = _host.Host(check_mode=True)
    wanted = node(tmp_path)
    files.check_placed(wanted.data, host)  # nothing there yet: fine
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'subnet.env').write_text(FLANNELD_ENV)  # flanneld's own: taken over
    files.check_placed(wanted.data, host)
    (tmp_path / 'run' / 'subnet.env').write_text(FOREIGN_ENV)
    (tmp_path / 'cni').mkdir()
    conflist = tmp_path / 'cni' / '10-overlay-mesh.conflist'
    conflist.write_text(PODMAN_CONFLIST.replace('"podman"', '"overlay-mesh"'))
    # check mode says what a run says (only the files part: a unit test leaves this machine's kernel alone)
    for check_mode in (True, False):
        with pytest.raises(files.FileRefused) as info:
            if check_mode:
                _node_apply.apply(wanted, _host.Host(check_mode=True), only=('files',))
            else:
                files.check_placed(wanted.data, _host.Host())
        message = str(info.value)
        assert 'subnet.env %s (role variable mesh_node_subnet_env_file): holds what overlay.mesh did not write' \
            % (tmp_path / 'run' / 'subnet.env') in message
        assert 'CNI conflist %s (role variable mesh_node_cni_conf_dir, mesh_node_cni_network_name)' % conflist in message
    assert (tmp_path / 'run' / 'subnet.env').read_text() == FOREIGN_ENV
    assert json.loads(conflist.read_text())['plugins'][0]['ipMasq'] is True
    # a parent that is a file
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(files.FileRefused, match=r'subnet.env %s/afile/sub/subnet.env \(role variable mesh_node_subnet_env_file\): '
                       r'%s/afile is not a directory' % (tmp_path, tmp_path)):
        files.check_placed(node(tmp_path, subnet_env=str(tmp_path / 'afile' / 'sub' / 'subnet.env')).data, host)
    # a directory where the file goes
    (tmp_path / 'adir').mkdir()
    with pytest.raises(files.FileRefused, match='adir \\(role variable mesh_node_subnet_env_file\\): is a directory'):
        files.check_placed(node(tmp_path, subnet_env=str(tmp_path / 'adir')).data, host)


def test_a_file_we_wrote_is_removed_only_while_it_is_ours(tmp_path):
    saved = node(tmp_path).data
    (tmp_path / 'run').mkdir()
    (tmp_path / 'cni').mkdir()
    env, conflist = tmp_path / 'run' / 'subnet.env', tmp_path / 'cni' / '10-overlay-mesh.conflist'
    env.write_text(FOREIGN_ENV)  # the user replaced what we wrote
    conflist.write_text(files.cni_conflist(node(tmp_path)))
    host = _host.Host()
    files.remove_placed(saved, host)
    assert env.read_text() == FOREIGN_ENV and not conflist.exists()
    assert host.report.changes == ['removed file %s' % conflist]
    assert host.report.warnings == ['left subnet.env %s (role variable mesh_node_subnet_env_file) in place: it holds what'
                                    ' overlay.mesh did not write (ours: %s); overlay.mesh wrote it once, remove it yourself'
                                    ' if it is no longer needed' % (env, files.SUBNET_ENV_RULE)]
    env.write_text(FLANNELD_ENV)
    files.remove_placed(saved, host, keep=[str(env)])
    assert env.exists()
    files.remove_placed(saved, host)
    assert not env.exists()


def test_node_info_says_what_the_node_would_refuse(tmp_path):
    from ansible_collections.overlay.mesh.plugins.module_utils import _node_module  # pylint: disable=import-outside-toplevel
    host = _host.Host(check_mode=True)
    wanted = {'subnet_env': str(tmp_path / 'subnet.env'), 'cni': {'conf_dir': str(tmp_path / 'cni')}}
    assert _node_module.files_refused(wanted, host) == ''
    (tmp_path / 'subnet.env').write_text(FOREIGN_ENV)
    assert 'subnet.env %s (role variable mesh_node_subnet_env_file): holds what overlay.mesh did not write' % (tmp_path / 'subnet.env') \
        in _node_module.files_refused(wanted, host)
    assert (tmp_path / 'subnet.env').read_text() == FOREIGN_ENV and not (tmp_path / 'cni').exists()
