# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for tests/docs/check_changelog.py: what make changelog refuses in the dry release's notes."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.tests.docs.check_changelog import collection_names, find_problems, main

PRESENT = {'module': ['smartos_image'], 'lookup': ['image'], 'filter': ['fleet_report'], 'role': ['image_host']}


def release(changes=None, modules=('smartos_image',), roles=('image_host',)):
    """One release of changelog.yaml as antsibull-changelog writes it."""
    return {
        'changes': changes or {'release_summary': 'First release.', 'minor_changes': ['smartos_image - imports.']},
        'modules': [{'name': n, 'namespace': '', 'description': 'd'} for n in modules],
        'plugins': {'lookup': [{'name': 'image', 'namespace': None, 'description': 'd'}],
                    'filter': [{'name': 'fleet_report', 'namespace': None, 'description': 'd'}]},
        'objects': {'role': [{'name': n, 'namespace': None, 'description': 'd'} for n in roles]},
    }


def notes(*names):
    """The new-plugin list lines of CHANGELOG.rst for NAMES."""
    return '\n'.join(f'- smartos.images.{name} - Something.' for name in names) + '\n'


ALL = ('smartos_image', 'image', 'fleet_report', 'image_host')


def test_clean_first_release_passes():
    assert find_problems({'0.1.0': release()}, '0.1.0', notes(*ALL), PRESENT) == []


@pytest.mark.parametrize('entry', [
    'smartos_image_foo - new module that imports images.',
    'image_host role - New role that converges a host.',
    'image lookup - new lookup asking a server.',
    'fleet_report filter - a NEW FILTER for reports.',
    'two new modules for sources.',
])
def test_a_fragment_announcing_a_plugin_is_refused(entry):
    problems = find_problems({'0.1.0': release({'minor_changes': [entry]})}, '0.1.0', notes(*ALL), PRESENT)
    assert len(problems) == 1 and 'announces' in problems[0] and entry[:30] in problems[0]


@pytest.mark.parametrize('entry', [
    'smartos_image - the ``lock_timeout`` option bounds the wait.',
    'smartos_image - a renewed module_utils reader.',
    'image lookup - news of images is read page by page.',
    'fleet_report filter - new filter options ``available_var`` and ``generated_at``.',
    'smartos_image - a new module option ``lock_timeout``.',
])
def test_plain_feature_notes_pass(entry):
    assert find_problems({'0.1.0': release({'minor_changes': [entry]})}, '0.1.0', notes(*ALL), PRESENT) == []


def test_a_role_without_version_added_is_missing_from_the_first_release():
    problems = find_problems({'0.1.0': release(roles=())}, '0.1.0', notes(*ALL[:3]), PRESENT)
    assert problems == ["new roles listed: []; in the collection: ['image_host'] (a missing one lacks version_added)"]


def test_a_plugin_listed_twice_is_refused():
    problems = find_problems({'0.1.0': release(modules=('smartos_image', 'smartos_image'))}, '0.1.0',
                             notes(*ALL, 'smartos_image'), PRESENT)
    assert "modules listed twice as new: ['smartos_image', 'smartos_image']" in problems
    assert 'module smartos_image appears 2 times in the new-module lists of CHANGELOG.rst' in problems


def test_a_plugin_missing_from_the_rst_is_refused():
    problems = find_problems({'0.1.0': release()}, '0.1.0', notes('smartos_image', 'image', 'image_host'), PRESENT)
    assert problems == ['filter fleet_report appears 0 times in the new-filter lists of CHANGELOG.rst']


def test_a_later_release_lists_only_what_is_new_in_it():
    releases = {'0.1.0': release(), '0.2.0': release(modules=(), roles=())}
    releases['0.2.0']['plugins'] = {}
    assert find_problems(releases, '0.2.0', '', PRESENT) == []


def test_main_reads_the_copy_and_exits_1_on_a_problem(tmp_path, capsys):
    (tmp_path / 'changelogs').mkdir()
    (tmp_path / 'plugins' / 'modules').mkdir(parents=True)
    (tmp_path / 'plugins' / 'modules' / 'smartos_image.py').write_text('')
    (tmp_path / 'plugins' / 'modules' / '__init__.py').write_text('')
    (tmp_path / 'roles' / 'image_host').mkdir(parents=True)
    (tmp_path / 'changelogs' / 'changelog.yaml').write_text(
        'releases:\n  0.1.0:\n    changes:\n      minor_changes:\n        - x - new module.\n'
        '    modules:\n      - {name: smartos_image, namespace: "", description: d}\n')
    (tmp_path / 'CHANGELOG.rst').write_text(notes('smartos_image'))
    assert collection_names(str(tmp_path)) == {'module': ['smartos_image'], 'lookup': [], 'filter': [],
                                               'role': ['image_host']}
    assert main([str(tmp_path), '0.1.0']) == 1
    out = capsys.readouterr().out
    assert 'changelog: new modules 1, lookups 0, filters 0, roles 0; fragments: minor_changes 1' in out
    assert "new roles listed: []; in the collection: ['image_host']" in out
    assert 'announces what the new-plugin lists already list: x - new module.' in out


@pytest.mark.parametrize('section', ['bugfixes', 'security_fixes', 'breaking_changes', 'deprecated_features',
                                     'removed_features'])
def test_a_first_release_refuses_fixes_and_changes_to_unreleased_behaviour(section):
    entry = 'smartos_image - a FIFO no longer blocks the run.'
    problems = find_problems({'0.1.0': release({'minor_changes': ['smartos_image - imports.'], section: [entry]})},
                             '0.1.0', notes(*ALL), PRESENT)
    assert len(problems) == 1
    assert problems[0].startswith(f'{section}: the first release has no earlier behaviour to change')
    assert 'trivial' in problems[0] and entry in problems[0]


@pytest.mark.parametrize('section', ['bugfixes', 'security_fixes', 'breaking_changes', 'deprecated_features',
                                     'removed_features'])
def test_a_later_release_may_fix_change_and_remove(section):
    releases = {'0.1.0': release(), '0.2.0': release({section: ['smartos_image - a FIFO no longer blocks the run.']},
                                                     modules=(), roles=())}
    releases['0.2.0']['plugins'] = {}
    assert find_problems(releases, '0.2.0', '', PRESENT) == []


def test_a_first_release_takes_feature_notes_and_known_issues():
    changes = {'release_summary': 'First release.', 'minor_changes': ['smartos_image - imports.'],
               'major_changes': ['smartos_image - streams.'], 'known_issues': ['smartos_image - no docker images.'],
               'trivial': ['smartos_image - a FIFO no longer blocks the run.']}
    assert find_problems({'0.1.0': release(changes)}, '0.1.0', notes(*ALL), PRESENT) == []


@pytest.mark.parametrize('entry', [
    'smartos_image - filters take imgadm fields (issue 16).',
    'smartos_image - filters take imgadm fields (Issue #16).',
    'smartos_image - filters take imgadm fields (see issues 12 and 16).',
    'smartos_image - a token is hidden (issue 12), and so is its header.',
    'smartos_image - a token is hidden (issue12).',
    'smartos_image - a token is hidden (#12).',
])
def test_an_issue_reference_is_refused_in_any_release(entry):
    first = find_problems({'0.1.0': release({'minor_changes': [entry]})}, '0.1.0', notes(*ALL), PRESENT)
    later = {'0.1.0': release(), '0.2.0': release({'bugfixes': [entry]}, modules=(), roles=())}
    later['0.2.0']['plugins'] = {}
    for problems in (first, find_problems(later, '0.2.0', '', PRESENT)):
        assert len(problems) == 1 and 'an internal reference, (' in problems[0] and entry in problems[0]


@pytest.mark.parametrize('entry', [
    'smartos_image - an issue 16 of the tracker is not a reference in parentheses.',
    'smartos_image - see https://github.com/example/smartos.images/issues/16 for the rationale.',
    'smartos_image - retries (up to 3 times) a failed download.',
    'smartos_image - the first entry (no. 1) of ``updates`` is the oldest image.',
    'smartos_image - a ``keep`` entry (issued by the role) is checked.',
])
def test_prose_and_links_are_not_issue_references(entry):
    assert find_problems({'0.1.0': release({'minor_changes': [entry]})}, '0.1.0', notes(*ALL), PRESENT) == []


def test_main_names_a_bugfix_of_the_first_release(tmp_path, capsys):
    (tmp_path / 'changelogs').mkdir()
    (tmp_path / 'changelogs' / 'changelog.yaml').write_text(
        'releases:\n  0.1.0:\n    changes:\n      bugfixes:\n        - y - no longer fails (issue 9).\n')
    (tmp_path / 'CHANGELOG.rst').write_text('')
    assert main([str(tmp_path), '0.1.0']) == 1
    out = capsys.readouterr().out
    assert 'fragments: bugfixes 1' in out
    assert 'changelog: bugfixes: the first release has no earlier behaviour to change' in out
    assert 'an internal reference, (issue 9), tells users nothing' in out
