# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """smartos_image's update_manifests option and its notes (kept here so that the module stays short)."""

    DOCUMENTATION = r'''
options:
  update_manifests:
    description:
      - Back-fill and refresh the cached manifests of the images on O(pool) from the sources
        (C(imgadm update)), and give an image that lost its C(@final) snapshot one back, found by
        the C(dataset_guid) of its manifest. Nothing is renamed in check mode (imgadm renames even
        with C(-n)).
      - As in imgadm, an image that no source has, or whose source manifest has no C(dataset_guid), is a
        warning and the run goes on; so is one with no snapshot left, where C(imgadm update) stops. RV(updates)
        says what happened to each image.
      - "To fail on one: C(failed_when: result.updates | selectattr('result', 'eq', 'failed') | list)."
      - When not set, nothing is refreshed (an image the task declares present that has no cached
        manifest at all is recorded in any case, see the notes).
    type: bool
notes:
  - Images are received with C(zfs receive -u) and stay unmounted; VMs are clones of their
    C(@final) snapshot and never use the mountpoint.
  - Where C(sysinfo) exists, an image whose C(requirements.min_platform) or C(max_platform) the
    platform does not meet is refused with imgadm's message.
  - Docker-type images are not supported yet and are refused with a clear error.
  - On a host with the original layout, an import also records what imgadm v1 recorded
    (C(/var/db/imgadm/<uuid>.json) and the C(imgadm:uuid) property); a delete removes that file too.
  - A run killed after an image's rename and before its cached manifest landed leaves the image without
    one. An image the task declares present that has no cached manifest gets it from the sources
    (action C(record), with C(changed)); when no source has it, the task warns. Temporary cache files
    (C(.<pool>-<uuid>.json.XXXXXXXX), and C(.<uuid>.json.XXXXXXXX) in the original layout) older than
    a minute, of an image no process holds the import lock of, are removed (action C(cleanup)).
  - A cached manifest whose C(uuid) is not its image's, or whose fields have the wrong type, is never
    used, neither to match a name (to delete, prune or keep) nor as the image's manifest; the task warns.
  - A C(<pool>/<uuid>-partial) dataset left by an interrupted import is destroyed before the import.
    One that holds more than an interrupted import leaves (a child dataset, a clone, more than one
    snapshot) is refused, naming it, where C(imgadm) would destroy it.
  - A run that fails part-way reports C(changed), and RV(imported) and RV(removed) name what it had
    already done.
  - O(state=present) of an image whose dataset C(<pool>/<uuid>) exists but is not listed by imgadm's rules
    (C(imgadm:ignore) set, the root of a zone, a clone without its own C(@final)) does what C(imgadm import) does -
    the image counts as already installed, nothing is imported, and the task warns, naming why imgadm's list
    hides it. Deleting such a dataset is refused (it is no image).
  - O(filters) take the fields of C(imgadm avail) filters, dotted for sub-fields, and its computed C(pub),
    C(published_date), C(published) and C(size); C(clones), C(zpool) and C(source) (where an image is, not
    what it is) and fields that are no manifest field are refused, naming the fields there are.
'''
