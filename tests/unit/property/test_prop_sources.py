# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the source readers: imgadm.conf, sources.list, source URLs and their redaction.
Only ImageError escapes, and no error or shown value holds a password, whatever its characters."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, InvalidParameter
from ansible_collections.smartos.images.plugins.module_utils._imgapi import ImageSource, redact
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    ModernSources, OriginalSources, SourceEntry, normalize_url,
)
from ansible_collections.smartos.images.tests.unit.property.strategies import (
    assert_no_secret, credential_urls, error_texts, json_values, keys,
)


class Paths:
    """HostPaths for a parse only: nothing is read or written."""
    config = '/nonexistent/var/imgadm/imgadm.conf'
    sources_list = '/nonexistent/var/db/imgadm/sources.list'

    @staticmethod
    def original_records():
        return []


urls = st.one_of(credential_urls(), st.text(max_size=40), st.sampled_from(
    ['http://[::1', 'https://[::1]:443/', 'img.example.com', 'https://img.example.com:99999', 'http://:80',
     'https://images.smartos.org/', 'http://x/datasets/', '//x', 'file:///etc/passwd', ' http://x ']))
source_items = st.one_of(json_values, st.fixed_dictionaries(
    {'url': urls}, optional={'type': st.one_of(st.sampled_from(['imgapi', 'dsapi', 'docker', 'IMGAPI']), json_values),
                             'insecure': json_values, 'channel': json_values}))
configs = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda c: json.dumps(c).encode(), json_values),
    st.builds(lambda s, extra: json.dumps(dict(extra, sources=s)).encode(),
              st.one_of(st.lists(source_items, max_size=4), json_values), st.dictionaries(keys, json_values, max_size=2)))


def read_or_refuse(store, raw):
    """The entries the store reads from raw, none of them showing a secret; None when it refuses raw with an
    ImageError that shows no secret either."""
    try:
        store.parse(raw)
        entries = store.entries()
    except ImageError as e:
        assert_no_secret(raw, *error_texts(e))
        return None
    for entry in entries:
        assert_no_secret(raw, *entry.shown().values())
    return entries


@given(configs)
def test_imgadm_conf_is_read_or_refused_with_an_image_error(raw):
    store = ModernSources(Paths())
    entries = read_or_refuse(store, raw)
    if entries is None:
        return
    for entry in entries:
        assert_no_secret(raw, repr(entry.identity[1:]))
        json.dumps(store.render(entries).decode('utf-8'))


sources_lists = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda lines: '\n'.join(lines).encode('utf-8', 'surrogatepass'), st.lists(st.one_of(urls, st.sampled_from(
        ['# comment', '$ shell', '', '   ', 'https://datasets.example.com/datasets'])), max_size=5)))


@given(sources_lists)
def test_sources_list_is_read_or_refused_with_an_image_error(raw):
    store = OriginalSources(Paths())
    entries = read_or_refuse(store, raw)
    if entries is not None:
        store.render(entries)


@given(source_items)
def test_a_config_entry_is_an_entry_or_an_image_error(item):
    try:
        entry = SourceEntry.from_config(item, '/var/imgadm/imgadm.conf')
    except ImageError as e:
        assert_no_secret(item, *error_texts(e))
        return
    assert_no_secret(item, *entry.shown().values())
    try:
        source = entry.for_import()
    except ImageError as e:
        assert_no_secret(item, *error_texts(e))
        return
    assert_no_secret(item, source.url, repr(source), source.base)


@given(urls)
def test_normalize_url_gives_text_or_an_invalid_parameter(url):
    try:
        normalized = normalize_url(url)
    except InvalidParameter as e:
        assert_no_secret(url, *error_texts(e))
        return
    assert isinstance(normalized, str)


@given(urls, st.sampled_from(['imgapi', 'dsapi', 'docker']))
def test_source_url_is_a_source_or_an_invalid_parameter_without_the_password(url, kind):
    try:
        source = ImageSource(url, type=kind)
    except InvalidParameter as e:
        assert_no_secret(url, *error_texts(e))
        return
    assert_no_secret(url, source.url, repr(source), source.base)


@given(credential_urls())
def test_redact_hides_the_password_whatever_its_characters(url):
    assert_no_secret(url, redact(url))


@given(st.text(max_size=40))
def test_redact_takes_any_text(url):
    assert isinstance(redact(url), str)
