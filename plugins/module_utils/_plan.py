# Private to the smartos.images collection: not a public API.
# Desired vs actual -> ordered actions, with no side effects (shared by check and real runs).
from __future__ import annotations

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageInUse


def clones_of_tree(inventory, dataset):
    """Clones of the snapshots of dataset or of any dataset below it (what `zfs destroy -r` would break), sorted."""
    found = []
    for name in inventory.datasets:
        if name == dataset or name.startswith(dataset + '/'):
            found.extend(inventory.clones_of(name))
    return sorted(set(found))


def check_is_image(pool, uuid, inventory, state):
    """Refuse to import over, or delete, a dataset <pool>/<uuid> that imgadm's rules say is no image."""
    dataset = '%s/%s' % (pool, uuid)
    if dataset in inventory.not_images:
        raise ImageError('dataset %s exists but is not an image: %s; refusing to %s it'
                         % (dataset, inventory.not_images[dataset], 'import over' if state == 'present' else 'delete'),
                         dataset=dataset)


def _in_use_by(inventory, pool, uuid, going):
    """The datasets that keep an image in use, not counting the datasets (and children) that are going."""
    gone = {'%s/%s' % (pool, u) for u in going} | {'%s/%s' % (pool, uuid)}  # destroy -r takes its own tree
    return [c for c in clones_of_tree(inventory, '%s/%s' % (pool, uuid))
            if c not in gone and not any(c.startswith(g + '/') for g in gone)]


def deletion_order(inventory, pool, uuids):
    """The images to delete, each after every image cloned from it; ImageInUse naming what else uses one."""
    pending, order = list(dict.fromkeys(uuids)), []
    while pending:
        ready = next((u for u in pending if not _in_use_by(inventory, pool, u, order)), None)
        if ready is None:
            # imgadm: ImageHasDependentClones; we name every dataset that is not going as well
            for uuid in pending:
                clones = _in_use_by(inventory, pool, uuid, pending + order)
                if clones:
                    raise ImageInUse('image "%s" has dependent clones: %s; delete or promote them first'
                                     % (uuid, ', '.join(clones)), dataset='%s/%s' % (pool, uuid), clones=clones)
            raise ImageError('images %s depend on each other in a loop' % ', '.join(pending))
        order.append(ready)
        pending.remove(ready)
    return order


def unused_images(inventory, pool, keep, going=()):
    """imgadm vacuum: images nothing is cloned from, again and again until none is left; children first.

    Images in keep stay; images already going (deleted by the same task) free their origins.
    """
    candidates = [u for u in inventory.images_on(pool) if u not in keep and u not in going]
    going, unused = list(going), []
    progress = True
    while progress:
        progress = False
        for uuid in candidates:
            if uuid not in unused and not _in_use_by(inventory, pool, uuid, going):
                going.append(uuid)
                unused.append(uuid)
                progress = True
    return unused


def foreign_partial(inventory, partial):
    """Why <pool>/<uuid>-partial is not what an interrupted import leaves (None when it is, or is absent).

    A killed `zfs receive`, or a run killed before its rename, leaves the dataset with at most one
    snapshot, no child and no clone: anything more was made by someone else.
    """
    if partial not in inventory.datasets:
        return None
    children = sorted(n for n in inventory.datasets if n.startswith(partial + '/'))
    snaps = sorted(n for n in inventory.datasets if n.startswith(partial + '@'))
    clones = clones_of_tree(inventory, partial)
    reasons = []
    if children:
        reasons.append('child dataset(s) %s' % ', '.join(children))
    if len(snaps) > 1:
        reasons.append('%d snapshots (%s)' % (len(snaps), ', '.join(s.split('@', 1)[1] for s in snaps)))
    if clones:
        reasons.append('clone(s) %s' % ', '.join(clones))
    return ' and '.join(reasons) or None


def check_partial(inventory, pool, uuid):
    """Refuse to import an image while a <pool>/<uuid>-partial that no interrupted import left is in the way."""
    partial = '%s/%s-partial' % (pool, uuid)
    why = foreign_partial(inventory, partial)
    if why:
        # imgadm destroys it whatever it holds; it may be someone's data
        raise ImageError('dataset %s is in the way of the import of image %s and is not what an interrupted import '
                         'leaves (it has %s); refusing to destroy it: look at it, then destroy or rename it yourself'
                         % (partial, uuid, why), dataset=partial)


def diff_after(before, actions, labels):
    """The installed-images dict after the actions (uuid -> name@version)."""
    after = dict(before)
    for action in actions:
        if action['action'] in ('import', 'refresh', 'record') and action['uuid'] in labels:
            after[action['uuid']] = labels[action['uuid']]
        elif action['action'] == 'import':
            after[action['uuid']] = '-'
        elif action['action'] == 'delete':
            after.pop(action['uuid'], None)
    return after


# ---- the plan of smartos_image: what the task will do, its result and its diff ----

RECORD_REASON = 'installed without a cached manifest (an import was interrupted before recording it)'


class ImagePlan:
    """What a smartos_image task will do, built while resolving the declared images (no I/O)."""

    def __init__(self):
        self.imports = []      # Found, base first
        self.records = []      # record actions
        self.deletes = []      # uuids, as declared
        self.present = set()
        self.absent = set()

    def import_uuids(self):
        return {f.uuid for f in self.imports}

    def add_imports(self, chain):
        for found in chain:
            if found.uuid not in self.import_uuids():
                self.imports.append(found)

    def manifest_of(self, uuid):
        return next((f.manifest for f in self.imports if f.uuid == uuid), None)


def record_action(pool, uuid, source_url):
    """Write the cache file of an installed image that has none."""
    return {'action': 'record', 'uuid': uuid, 'dataset': '%s/%s' % (pool, uuid), 'source': source_url,
            'reason': RECORD_REASON}


def ordered_actions(pool, imports, deletes, others):
    """Every action of a run, in the order they run: imports, deletes, then refreshes, records and cleanups."""
    return ([{'action': 'import', 'uuid': f.uuid, 'dataset': '%s/%s' % (pool, f.uuid)} for f in imports]
            + [{'action': 'delete', 'uuid': u, 'dataset': '%s/%s' % (pool, u)} for u in deletes] + list(others))


def images_diff(before, actions, labels):
    """The diff of a run: the installed images (uuid -> name@version) before and after its actions."""
    return dict(before=dict(images=before), after=dict(images=diff_after(before, actions, labels)))


def shape_result(result, entries, pool, several, image_of):
    """One declared image: its fields at the top level (as before); several: a results list."""
    if several:
        result['results'] = entries
    elif len(entries) == 1:
        entry = entries[0]
        uuid = entry.get('uuid') or (entry.get('uuids') or [None])[0]
        if uuid:
            result.update(uuid=uuid, dataset='%s/%s' % (pool, uuid), image=entry.get('image') or image_of(uuid))
        if entry.get('source'):
            result['source'] = entry['source']


def drop_skipped(result, entries, skipped):
    """Take out of a result the imports another process did while this one waited for the lock."""
    # imgadm checkIfImportedAfterLock: another process imported them while we waited
    result['actions'] = [a for a in result['actions'] if not (a['action'] == 'import' and a['uuid'] in skipped)]
    result['imported'] = [u for u in result['imported'] if u not in skipped]
    result['changed'] = bool(result['actions'])
    result['msg'] = ('image(s) %s were imported by another process while waiting for the import lock'
                     % ', '.join(skipped))
    for entry in entries:
        if entry.get('imported'):
            entry['imported'] = [u for u in entry['imported'] if u not in skipped]
            entry['changed'] = bool(entry['imported'])


def import_sources(imports, came_from=None):
    """uuid -> the source URL of each image imported from a source (not a local file): the one planned (the first
    source that has it), or once imported the one it came from (came_from: uuid -> Found)."""
    came_from = came_from or {}
    chosen = [came_from.get(f.uuid, f) for f in imports]
    return {f.uuid: f.source.url for f in chosen if f.source.type != 'file'}


def note_sources(result, entries, sources):
    """After the imports: each result's source is the one the image actually came from (sources: uuid -> URL)."""
    if 'imported_from' in result:   # only a run that planned imports has them, as in check mode
        result['imported_from'] = sources
    for entry in entries:
        if entry.get('source') and entry.get('uuid') in sources:
            entry['source'] = sources[entry['uuid']]
