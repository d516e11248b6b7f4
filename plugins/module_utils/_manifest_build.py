# Private to the smartos.images collection: not a public API.
# Manifests of new images: v2 and v1 (DSAPI) built from a task's fields, and node-imgmanifest's field rules.
from __future__ import annotations

import datetime
import json
import math
import re
import uuid as uuidlib

from ansible_collections.smartos.images.plugins.module_utils._host import json_bytes
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    COMPRESSIONS, MINIMAL_FIELDS, NAME_RE, OSES, TYPES, VERSION_RE, is_uuid,
)

NO_OWNER = '00000000-0000-0000-0000-000000000000'   # IMGAPI docs: owner "has no meaning" outside a DC
# Fixed: the same snapshot, name, version, type and origin always give the same image UUID.
UUID_NAMESPACE = uuidlib.UUID('6d3c1a52-4c33-5b3e-9a57-2f0c0a8e6e11')
# imgadm createImage: fields an incremental image takes from its origin unless given (reference §4.7, §6.3)
INHERITED = ('type', 'os', 'requirements', 'users', 'billing_tags', 'traits', 'generate_passwords',
             'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size')
ZVOL_FIELDS = ('nic_driver', 'disk_driver', 'cpu_type', 'image_size')
# The order fields are written in (the rest follow, sorted).
ORDER = ('v', 'uuid', 'owner', 'name', 'version', 'description', 'homepage', 'eula', 'state', 'disabled',
         'public', 'published_at', 'type', 'os', 'origin', 'files', 'acl', 'requirements', 'users',
         'billing_tags', 'traits', 'tags', 'generate_passwords', 'inherited_directories') + ZVOL_FIELDS
# Fields the module sets itself; everything else of §6.1 may come from the task.
MANAGED = ('v', 'uuid', 'published_at', 'files', 'origin', 'state', 'activated', 'error', 'name', 'version',
           'description', 'homepage', 'type', 'os', 'owner', 'requirements')

# node-imgmanifest (reference §6): regexes, limits and value sets.
# [0-9], not \d: JavaScript's \d is ASCII only, Python's also matches other scripts' digits.
PUBLISHED_AT_RE = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z\Z')
PLATFORM_RE = re.compile(r'^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z\Z')
# A number written as text that Number() reads as JavaScript does (decimal only: exponent and 0x forms, which
# Number() also reads, are refused here and in the schema alike; Python's float() would take '1_0' and 'nan').
NUMBER_TEXT_RE = re.compile(r'^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*\Z')
# node-imgmanifest only asks url.parse() for an http: or https: protocol; we also want a host, as the schema does.
URL_RE = re.compile(r'^https?://[^/?#\s]+', re.IGNORECASE)
SHA1_RE = re.compile(r'^[0-9a-fA-F]{40}\Z')
STATES = ('active', 'unactivated', 'disabled', 'failed', 'creating')
FIELDS = frozenset(ORDER + ('urn', 'icon', 'error', 'activated', 'channels'))
REQUIREMENTS = ('networks', 'brand', 'ssh_key', 'min_ram', 'max_ram', 'min_platform', 'max_platform', 'bootrom')
MAX_NAME, MAX_VERSION, MAX_DESCRIPTION, MAX_URL, MAX_BILLING_TAG, MAX_TAGS = 1024, 512, 10240, 1024, 128, 102400
# DSAPI (reference §5.4): v1 names and versions are shorter and plainer.
V1_NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9._-]*\Z')
V1_MAX_NAME, V1_MAX_VERSION, V1_MAX_DESCRIPTION = 32, 32, 255
URN_PART_RE = re.compile(r'^[A-Za-z0-9._-]+\Z')
CLOUD_NAME = 'smartos'   # the wiki: 'for the "cloud_name" I suggest "smartos" if you are unsure'


def published_at(now=None):
    """The current UTC time as the wiki's `date +"%Y-%m-%dT%T.000Z"`, with real milliseconds."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (now.microsecond // 1000)


def derive_uuid(dataset_guid, name, version, image_type, origin):
    """The image UUID when none is given: a name-based (v5) UUID of what makes the image what it is."""
    key = json.dumps([str(dataset_guid), name, version, image_type, origin])
    return str(uuidlib.uuid5(UUID_NAMESPACE, key))


def ordered(manifest):
    """The manifest's fields in ORDER, the others after them, sorted; None values left out."""
    keys = [k for k in ORDER if k in manifest] + sorted(k for k in manifest if k not in ORDER)
    return {k: manifest[k] for k in keys if manifest[k] is not None}


def desired_fields(task, origin_manifest=None, defaults=None):
    """The manifest fields a task asks for, without uuid, published_at and files.

    Precedence: the task's own fields, then (for an incremental image) its origin's inheritable
    fields, then the defaults (from the dataset or VM).
    """
    fields = dict(task.get('fields') or {})
    for key in ('name', 'version', 'description', 'homepage', 'os', 'type', 'owner', 'requirements'):
        if task.get(key) is not None:
            fields[key] = task[key]
    for key in INHERITED:
        # imgadm create (reference 4.7) does not carry an origin's empty arrays (billing_tags: []) over
        if key not in fields and origin_manifest and origin_manifest.get(key) not in (None, []):
            fields[key] = origin_manifest[key]
    for key, value in (defaults or {}).items():
        if key not in fields and value is not None:
            fields[key] = value
    fields.setdefault('owner', NO_OWNER)
    fields.setdefault('public', True)
    fields.setdefault('disabled', False)
    fields['state'] = 'disabled' if fields['disabled'] is True else 'active'
    fields['v'] = 2
    if task.get('origin'):
        fields['origin'] = task['origin']
    return fields


def build_v2(fields, image_uuid, when, file_entry):
    """The v2 manifest: the fields, the UUID, published_at and files[0]."""
    manifest = dict(fields, uuid=image_uuid, published_at=when, files=[file_entry])
    return ordered(manifest)


def v1_problems(v2, creator_name):
    """Why a v2 manifest cannot also be written as a DSAPI v1 manifest (empty when it can)."""
    problems = []
    name, version = v2.get('name') or '', v2.get('version') or ''
    if len(name) > V1_MAX_NAME or not V1_NAME_RE.match(name):
        problems.append('name %r: DSAPI names start with a letter, then letters, digits, "-", "." or "_", '
                        'at most %d' % (name, V1_MAX_NAME))
    if len(version) > V1_MAX_VERSION or not URN_PART_RE.match(version):
        problems.append('version %r: DSAPI versions are letters, digits, "-", "." or "_" (they go into the urn), '
                        'at most %d' % (version, V1_MAX_VERSION))
    if not v2.get('description') or len(v2['description']) > V1_MAX_DESCRIPTION:
        problems.append('description: DSAPI needs one, at most %d characters' % V1_MAX_DESCRIPTION)
    if not creator_name or not URN_PART_RE.match(creator_name):
        problems.append('creator_name %r: DSAPI needs one, letters, digits, "-", "." or "_" (it goes into the urn)'
                        % (creator_name,))
    if v2.get('origin'):
        problems.append('origin: DSAPI has no incremental images')
    return problems


def build_v1(v2, file_name, creator_name, cloud_name=CLOUD_NAME):
    """The DSAPI (v1) manifest of the same image, with the fields the SmartOS wiki lists as required."""
    entry = v2['files'][0]
    v1_file = {'path': file_name, 'sha1': entry['sha1'], 'size': entry['size']}
    if entry['compression'] not in ('gzip', 'bzip2') or not file_name.endswith(('.gz', '.bz2')):
        # the v1 -> v2 upgrade guesses compression from .gz/.bz2 only; say it where it would guess wrong
        v1_file['compression'] = entry['compression']
    manifest = {
        'uuid': v2['uuid'], 'name': v2['name'], 'version': v2['version'], 'description': v2['description'],
        'os': v2['os'], 'type': v2['type'],
        'urn': '%s:%s:%s:%s' % (cloud_name, creator_name, v2['name'], v2['version']),
        'creator_name': creator_name, 'creator_uuid': v2['owner'], 'published_at': v2['published_at'],
        'files': [v1_file],
    }
    if v2.get('public') is False:
        manifest['restricted_to_uuid'] = (v2.get('acl') or [v2['owner']])[0]
    for key in ('requirements', 'users', 'generate_passwords', 'inherited_directories') + ZVOL_FIELDS:
        if v2.get(key) is not None:
            manifest[key] = v2[key]
    return manifest


def dumps(manifest):
    """A manifest file's bytes: JSON with two-space indents and a final newline, as imgadm writes them."""
    return json_bytes(manifest, indent=2, newline=True)


# ---- node-imgmanifest's rules (reference §6.1, §6.2) ----

def _js_truthy(value):
    return value not in (None, False, 0, '')


def _bool_like(value):
    return isinstance(value, bool) or value in ('true', 'false')


def _js_number(value):
    """Number(value) for a JSON number or numeric text, as a float; None where it is not one (NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        if not NUMBER_TEXT_RE.match(value):
            return None
        value = value.strip()
    try:
        return float(value)
    except OverflowError:   # an integer beyond a double: JavaScript reads it as Infinity
        return float('inf') if value > 0 else float('-inf')


def _is_int(value):
    """Number(value) is an integer (a numeric string passes)."""
    number = _js_number(value)
    return number is not None and number.is_integer()


def _is_whole(value):
    """A JSON number that is an integer: JSON.parse makes 256.0 and 256 the same number."""
    return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


def _url_problem(value):
    if not isinstance(value, str) or len(value) > MAX_URL:
        return 'must be a URL of at most %d characters' % MAX_URL
    if not URL_RE.match(value):
        return 'must be an http: or https: URL'
    return None


def _platform_problem(value):
    if not isinstance(value, dict) or not value:
        return 'must be a non-empty object {<SDC version>: "YYYYMMDDTHHMMSSZ"}'
    for stamp in value.values():
        m = PLATFORM_RE.match(stamp) if isinstance(stamp, str) else None
        if not m or int(m.group(1)) < 2012 or not 1 <= int(m.group(2)) <= 12 or not 1 <= int(m.group(3)) <= 31 \
                or int(m.group(4)) > 23 or int(m.group(5)) > 59 or int(m.group(6)) > 59:
            return 'has an invalid platform timestamp %r (YYYYMMDDTHHMMSSZ, 2012 or later)' % (stamp,)
    return None


def requirements_problems(req):
    """node-imgmanifest validators.requirements (reference §6.2)."""
    if not isinstance(req, dict):
        return ['requirements: must be an object']
    problems = ['requirements: unsupported requirement "%s"' % k for k in req if k not in REQUIREMENTS]
    nets = req.get('networks')
    if 'networks' in req and (not isinstance(nets, list) or not all(
            isinstance(n, dict) and sorted(n) == ['description', 'name'] for n in nets)):
        problems.append('requirements.networks: must be an array of {"name", "description"} objects')
    if 'brand' in req and not isinstance(req['brand'], str):
        problems.append('requirements.brand: must be a string')
    if 'ssh_key' in req and not isinstance(req['ssh_key'], bool):
        problems.append('requirements.ssh_key: must be a boolean')
    for key in ('min_ram', 'max_ram'):
        if key in req and not _is_whole(req[key]):
            problems.append('requirements.%s: must be an integer (MiB)' % key)
    if _is_whole(req.get('min_ram')) and _is_whole(req.get('max_ram')) and req['min_ram'] > req['max_ram']:
        problems.append('requirements.min_ram: must not be more than max_ram')
    for key in ('min_platform', 'max_platform'):
        problem = _platform_problem(req[key]) if key in req else None
        if problem:
            problems.append('requirements.%s: %s' % (key, problem))
    if 'bootrom' in req:
        if req['bootrom'] not in ('bios', 'uefi'):
            problems.append('requirements.bootrom: must be "bios" or "uefi"')
        if req.get('brand') != 'bhyve':
            problems.append('requirements.bootrom: needs requirements.brand "bhyve"')
    return problems


def _files_problems(files, image_type):
    if not isinstance(files, list):
        return ['files: must be an array']
    problems = []
    if len(files) > (2 if image_type == 'lxd' else 1):
        problems.append('files: too many entries (%d)' % len(files))
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            problems.append('files[%d]: must be an object' % i)
            continue
        if not _js_truthy(entry.get('sha1')):
            problems.append('files[%d].sha1: missing' % i)
        if not _js_truthy(entry.get('size')):
            problems.append('files[%d].size: missing' % i)
        if entry.get('compression') not in COMPRESSIONS:
            problems.append('files[%d].compression: must be one of %s' % (i, ', '.join(COMPRESSIONS)))
    return problems


def _value_problem(key, value, manifest):
    """node-imgmanifest's validator for one present field; None when it passes."""
    if key == 'v':
        ok = _is_number(value) and _js_number(value) >= 0
        return None if ok else 'must be a positive integer'
    if key in ('uuid', 'owner', 'origin'):
        return None if is_uuid(value) else 'must be a lower-case UUID'
    if key == 'urn':
        return None if isinstance(value, str) else 'must be a string'
    if key == 'name':
        ok = isinstance(value, str) and len(value) <= MAX_NAME and NAME_RE.match(value)
        return None if ok else 'letters, digits, space and . _ / - only, at most %d' % MAX_NAME
    if key == 'version':
        ok = isinstance(value, str) and len(value) <= MAX_VERSION and VERSION_RE.match(value)
        return None if ok else 'letters, digits and . _ / + - only, at most %d' % MAX_VERSION
    if key == 'description':
        return None if isinstance(value, str) and len(value) <= MAX_DESCRIPTION else \
            'must be a string of at most %d characters' % MAX_DESCRIPTION
    if key in ('homepage', 'eula'):
        return _url_problem(value)
    if key in ('icon', 'disabled', 'activated', 'public', 'generate_passwords'):
        return None if _bool_like(value) else 'must be a boolean'
    if key == 'state':
        return None if value in STATES else 'must be one of %s' % ', '.join(STATES)
    if key == 'error':
        return None if isinstance(value, dict) else 'must be an object'
    if key == 'published_at':
        return None if isinstance(value, str) and PUBLISHED_AT_RE.match(value) else \
            'must be YYYY-MM-DDTHH:MM:SS(.mmm)Z'
    return _typed_problem(key, value, manifest)


def _typed_problem(key, value, manifest):
    """_value_problem for the fields whose rule depends on the type (or state) or that hold arrays and objects."""
    if key in ('type', 'os'):
        allowed = TYPES if key == 'type' else OSES
        if value == 'null' and manifest.get('state') in ('creating', 'failed'):
            return None
        return None if value in allowed else 'must be one of %s' % ', '.join(allowed)
    return _structure_problem(key, value, manifest)


def _structure_problem(key, value, manifest):
    """node-imgmanifest's validator for the array, object and type-bound fields; None when it passes."""
    if key == 'acl':
        return None if isinstance(value, list) and all(is_uuid(u) for u in value) else 'must be an array of UUIDs'
    if key == 'users':
        ok = isinstance(value, list) and all(isinstance(u, dict) and list(u) == ['name'] for u in value)
        return None if ok else 'must be an array of {"name"} objects'
    if key == 'billing_tags':
        ok = isinstance(value, list) and all(isinstance(t, str) and len(t) <= MAX_BILLING_TAG for t in value)
        return None if ok else 'must be an array of strings of at most %d characters' % MAX_BILLING_TAG
    if key == 'traits':
        ok = isinstance(value, dict) and all(isinstance(t, (str, bool, list)) for t in value.values())
        return None if ok else 'must be an object of strings, booleans or arrays'
    if key == 'tags':
        ok = isinstance(value, dict) and len(json.dumps(value)) <= MAX_TAGS
        return None if ok else 'must be an object (at most %d characters as JSON)' % MAX_TAGS
    if key == 'inherited_directories':
        if manifest.get('type') != 'zone-dataset':
            return 'only allowed for type zone-dataset'
        return None if isinstance(value, list) and all(isinstance(d, str) for d in value) else 'must be an array of strings'
    if key in ('nic_driver', 'disk_driver', 'cpu_type', 'image_size'):
        if _js_truthy(value) and manifest.get('type') != 'zvol':
            return 'only allowed for type zvol'
        if key == 'image_size':
            return None if _is_int(value) else 'must be an integer (MiB)'
        return None if isinstance(value, str) else 'must be a string'
    if key == 'channels':
        return None if isinstance(value, list) and all(isinstance(c, str) for c in value) else 'must be an array of strings'
    return None


def _is_number(value):
    number = _js_number(value)
    return number is not None and not math.isnan(number)


def manifest_problems(manifest, required=MINIMAL_FIELDS):
    """Every rule of node-imgmanifest (reference §6) the manifest breaks, as 'field: why' strings."""
    if not isinstance(manifest, dict):
        return ['manifest: must be an object']
    problems = ['%s: missing' % f for f in required if manifest.get(f) in (None, '')]
    for key in sorted(manifest):
        if key not in FIELDS:
            problems.append('%s: unknown field' % key)
        elif key == 'files':
            problems.extend(_files_problems(manifest[key], manifest.get('type')))
        elif key == 'requirements':
            problems.extend(requirements_problems(manifest[key]))
        else:
            problem = _value_problem(key, manifest[key], manifest)
            if problem:
                problems.append('%s: %s' % (key, problem))
    if manifest.get('type') == 'zvol':
        problems.extend('%s: required for type zvol' % k for k in ZVOL_FIELDS if manifest.get(k) in (None, ''))
    if manifest.get('activated') in (True, 'true'):
        problems.extend('%s: required for an activated image' % k for k in ('published_at', 'files')
                        if manifest.get(k) is None)
    return problems
