# Private to the smartos.images collection: not a public API.
# The smartos_image_create worker: find the source, plan what to make, then snapshot, send, compress and write.
from __future__ import annotations

import os
import signal
import tempfile
import time

from ansible_collections.smartos.images.plugins.module_utils import _host
from ansible_collections.smartos.images.plugins.module_utils._compress import compress_stream, default_workers
from ansible_collections.smartos.images.plugins.module_utils._create_files import (
    close_fd, open_temp, write_all, write_error,
)
from ansible_collections.smartos.images.plugins.module_utils._create_plan import (
    Planner, check_params, image_fields, v1_bytes,
)
from ansible_collections.smartos.images.plugins.module_utils._create_source import SourceFinder
from ansible_collections.smartos.images.plugins.module_utils._errors import CommandError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest_build import (
    build_v2, derive_uuid, dumps, manifest_problems, published_at,
)
from ansible_collections.smartos.images.plugins.module_utils._vmadm import Vmadm
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs


# a BaseException, so that no handler of ordinary failures (the compressor's) takes it for one
class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived while the module was making files: clean up, then report it."""


def _interrupted(signum, frame):
    raise Interrupted(signum)


class Made:
    """What a run has made so far, so that a failure can take it back: the snapshot, the open image file, the
    output files not yet in place, and the image file in place but not yet described by a manifest."""

    def __init__(self):
        self.snapshot = False
        self.fd = None
        self.pending = []
        self.undescribed = None


class ImageCreator:
    """Makes an image file and its manifest(s) from a VM, a dataset or a snapshot: find, plan, then act."""

    def __init__(self, params, runner, check_mode=False, workers=None, now=None):
        self.params = params
        self.runner = runner
        self.check_mode = check_mode
        self.zfs = Zfs(runner)
        self.vmadm = Vmadm(runner)
        paths = _host.HostPaths(params.get('host_root') or '/')
        self.finder = SourceFinder(params, self.zfs, self.vmadm, runner, paths,
                                   _host.detect_layout(paths, params.get('layout') or 'auto'))
        self.workers = workers or default_workers()
        self.now = now

    @property
    def warnings(self):
        """What the module should warn about (the module scaffold shows them)."""
        return self.finder.warnings

    def timestamp(self):
        return published_at(self.now() if self.now else None)

    def run(self, diff=False):
        """Plan, then act unless in check mode; return the module result."""
        check_params(self.params)
        source = self.finder.find()
        incremental_from, origin_manifest = None, {}
        if self.params.get('origin'):
            incremental_from, origin_manifest = self.finder.find_origin(source)
        fields = image_fields(self.params, source, origin_manifest)
        plan = Planner(self.params, self.timestamp).plan(source, fields, incremental_from)
        seconds = 0.0
        if plan.actions and not self.check_mode:
            started = time.monotonic()
            CreateExecutor(self).execute(plan)
            seconds = round(time.monotonic() - started, 3)
        result = self.result(plan, seconds)
        if diff:
            result['diff'] = plan.diff
        return result

    def result(self, plan, seconds):
        p = self.params
        return dict(
            changed=bool(plan.actions), actions=plan.actions,
            manifest=plan.manifest if plan.manifest is not None else plan.predicted,
            uuid=plan.uuid, manifest_path=plan.manifest_path, file_path=plan.file_path,
            dsmanifest_path=plan.dsmanifest_path if p.get('dsmanifest') else None,
            dataset=plan.source.dataset, snapshot=plan.source.snapshot, dataset_guid=plan.guid,
            sha1=plan.sha1, size=plan.size, seconds=seconds,
        )


class CreateExecutor:
    """Runs a plan's actions; on failure or interruption removes what this run made and says why."""

    def __init__(self, creator):
        self.params = creator.params
        self.zfs = creator.zfs
        self.vmadm = creator.vmadm
        self.workers = creator.workers
        self.timestamp = creator.timestamp

    def execute(self, plan):
        """Run the planned actions with SIGTERM and SIGHUP turned into a clean-up, then the handlers restored."""
        handlers = {}
        try:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                handlers[signum] = signal.signal(signum, _interrupted)
        except ValueError:
            pass    # not the main thread (a test): signals stay as they are
        try:
            self.act(plan)
        except Interrupted as e:
            left = getattr(e, 'left', None)
            outcome = 'cleaning up failed: %s' % '; '.join(left) if left else 'what this run had made was removed'
            raise ImageError('interrupted by signal %d; %s' % (e.args[0], outcome))
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def act(self, plan):
        """Make the files (taken back on any failure), then the steps after them."""
        made = Made()
        for path in plan.orphans:
            _host.discard(path)     # a killed run's partial image file: room for this one
        try:
            self.make(plan, made)
        except BaseException as e:
            left = self.clean_up(plan, made)
            if left and isinstance(e, ImageError):
                e.msg = '%s; and cleaning up failed: %s' % (e.msg, '; '.join(left))
                e.args = (e.msg,)
            elif isinstance(e, Interrupted):
                e.left = left
            raise
        if plan.stale_file:
            _host.discard(plan.stale_file)
        if plan.has('remove_snapshot'):
            self.remove_snapshot(plan)

    def make(self, plan, made):
        """Snapshot, send into a temporary file, then move the image file and its manifests into place."""
        image = _host.PendingFile(plan.file_path)
        if plan.has('send'):
            # fail on an unwritable output directory before the VM is stopped or anything is snapshotted
            made.fd, tmp = open_temp(plan.file_path)
            image.adopt(tmp)
            made.pending.append(image)
        for action in plan.actions:
            if action['action'] == 'stop_vm':
                self.stop_vm(action['vm'])
            elif action['action'] == 'snapshot':
                self.zfs.snapshot(action['snapshot'])
                made.snapshot = True
                plan.guid = self.zfs.guid(action['snapshot'])
        if plan.has('send'):
            self.send_image(plan, made)
        problems = manifest_problems(plan.manifest, required=('v', 'uuid', 'name', 'version', 'type', 'os', 'files'))
        if problems:
            raise ImageError('the manifest made for %s is invalid: %s' % (plan.source.snapshot, '; '.join(problems)),
                             problems=problems)
        self.write_outputs(plan, made, image)

    def send_image(self, plan, made):
        """Send the snapshot into the open temporary file; the manifest then describes what was written."""
        p = self.params
        plan.uuid = p.get('uuid') or derive_uuid(plan.guid, p['name'], p['version'], plan.fields['type'],
                                                 p.get('origin'))
        written = self.send(plan, made.fd)
        fd, made.fd = made.fd, None
        close_fd(fd, plan.file_path)
        plan.sha1, plan.size = written.sha1, written.size
        plan.manifest = build_v2(plan.fields, plan.uuid, self.timestamp(),
                                 {'sha1': plan.sha1, 'size': plan.size, 'compression': plan.compression,
                                  'dataset_guid': plan.guid})

    def write_outputs(self, plan, made, image):
        """Every file prepared first; then the image file in place, then what describes it."""
        manifests = []
        if plan.has('write_manifest'):
            manifests.append((_host.PendingFile(plan.manifest_path), dumps(plan.manifest)))
        if plan.has('write_dsmanifest'):
            manifests.append((_host.PendingFile(plan.dsmanifest_path),
                              v1_bytes(plan.manifest, plan, self.params['creator_name'])))
        for pending, data in manifests:
            made.pending.append(pending)
            pending.prepare(data, 0o644)
        if plan.has('send'):
            image.commit()
            made.undescribed = plan.file_path
        for pending, dummy in manifests:
            pending.commit()
            if pending.path == plan.manifest_path:
                made.undescribed = None     # the file is described: it stays even if a .dsmanifest fails
        made.pending = []

    def remove_snapshot(self, plan):
        """The files are written: remove the module's snapshot, as asked."""
        try:
            self.zfs.destroy_snapshot(plan.source.snapshot)
        except ImageError as e:
            raise ImageError('the image files are written, but the snapshot %s could not be removed: %s; remove it '
                             'with `zfs destroy %s`' % (plan.source.snapshot, e.msg, plan.source.snapshot),
                             snapshot=plan.source.snapshot, file_path=plan.file_path,
                             manifest_path=plan.manifest_path, changed=True)

    def clean_up(self, plan, made):
        """Remove what a failed run made, each step on its own; what could not be removed, as messages naming it."""
        left = []
        if made.fd is not None:
            try:
                os.close(made.fd)
            except OSError:
                pass    # the failure being reported already says what is wrong with the file
        for pending in made.pending:
            try:
                pending.abort()
            except ImageError as e:
                left.append(e.msg)
        if made.undescribed:
            try:
                _host.discard(made.undescribed)
            except ImageError as e:
                left.append(e.msg)
        if made.snapshot:
            try:
                self.zfs.destroy_snapshot(plan.source.snapshot)
            except ImageError as e:
                left.append('the snapshot %s this run made could not be removed (%s): remove it with `zfs destroy %s`'
                            % (plan.source.snapshot, e.msg, plan.source.snapshot))
        return left

    def stop_vm(self, uuid):
        """vmadm stop, then make sure the VM is stopped before it is snapshotted."""
        self.vmadm.stop(uuid)
        vm = self.vmadm.get(uuid) or {}
        if vm.get('state') != 'stopped':
            raise ImageError('VM "%s" is still %s after vmadm stop; nothing was snapshotted' % (uuid, vm.get('state')),
                             vm=uuid)

    def send(self, plan, fd):
        """zfs send [-i origin@final] snapshot, compressed on every core and hashed on the way into fd."""
        argv = ['zfs', 'send'] + (['-i', plan.incremental_from] if plan.incremental_from else []) + [plan.source.snapshot]
        with tempfile.TemporaryFile() as errfile:
            try:
                proc = self.zfs.send(plan.source.snapshot, errfile, plan.incremental_from)
            except OSError as e:
                raise CommandError('zfs send of %s could not start: %s' % (plan.source.snapshot, e.strerror or e),
                                   cmd=' '.join(argv))
            written = self.compress(plan, proc, fd, argv)
            rc = proc.wait()
            errfile.seek(0)
            stderr = errfile.read().decode('utf-8', 'replace').strip()
        if rc != 0:
            raise CommandError('zfs send of %s failed: %s' % (plan.source.snapshot, stderr or 'exit code %d' % rc),
                               cmd=' '.join(argv), rc=rc, stderr=stderr)
        return written

    def compress(self, plan, proc, fd, argv):
        """The send stream of proc, compressed and hashed into fd and synced; proc is killed on any failure."""
        def read(size):
            try:
                return proc.stdout.read(size)
            except OSError as e:
                raise CommandError('reading the send stream of %s failed: %s' % (plan.source.snapshot, e.strerror or e),
                                   cmd=' '.join(argv))

        def write(data):
            write_all(fd, data, plan.file_path)

        try:
            written = compress_stream(read, write, plan.compression, self.workers)
            try:
                os.fsync(fd)
            except OSError as e:
                raise write_error(plan.file_path, e)
        except BaseException as e:
            proc.kill()
            proc.wait()
            if isinstance(e, Exception) and not isinstance(e, ImageError):
                # a compressor's own failure (zlib, bz2, lzma, memory): the module's error, not a traceback
                raise ImageError('compressing the send stream of %s with %s failed: %s'
                                 % (plan.source.snapshot, plan.compression,
                                    '%s: %s' % (type(e).__name__, e) if str(e) else type(e).__name__),
                                 path=plan.file_path)
            raise
        finally:
            proc.stdout.close()
        return written
