# Private to the smartos.images collection: not a public API.
# Desired vs actual -> ordered actions, with no side effects (shared by check and real runs).
from __future__ import annotations

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageInUse


def dependents(inventory, dataset):
    """Clones of the snapshots of dataset or of any dataset below it, sorted."""
    found = []
    for name in inventory.datasets:
        if name == dataset or name.startswith(dataset + '/'):
            found.extend(inventory.dependents(name))
    return sorted(set(found))


def plan_image(state, pool, uuid, inventory):
    """The actions that bring one image on one pool to state ([] when it already is)."""
    dataset = '%s/%s' % (pool, uuid)
    installed = inventory.is_image(pool, uuid)
    if dataset in inventory.not_images:
        raise ImageError('dataset %s exists but is not an image: %s; refusing to %s it'
                         % (dataset, inventory.not_images[dataset],
                            'import over' if state == 'present' else 'delete'),
                         dataset=dataset)
    if state == 'present':
        return [] if installed else [{'action': 'import', 'uuid': uuid, 'dataset': dataset}]
    if not installed:
        return []
    clones = dependents(inventory, dataset)
    if clones:
        # imgadm: ImageHasDependentClones; we name them all
        raise ImageInUse('image "%s" has dependent clones: %s; delete or promote them first'
                         % (uuid, ', '.join(clones)), dataset=dataset, clones=clones)
    return [{'action': 'delete', 'uuid': uuid, 'dataset': dataset}]


def diff_after(before, actions, labels):
    """The installed-images dict after the actions (uuid -> name@version)."""
    after = dict(before)
    for action in actions:
        if action['action'] == 'import':
            after[action['uuid']] = labels.get(action['uuid'], '-')
        elif action['action'] == 'delete':
            after.pop(action['uuid'], None)
    return after
