"""The fleet report page in a real browser: headless Chromium driven over its DevTools pipe (Python's standard
library only). A click on a column heading sorts the table; the keyboard reaches the heading's button (Tab), Enter
sorts, and aria-sort follows; hostile host and image names stay text."""
from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time

import jinja2
import pytest

from tests.integration.conftest import BUILD, REPO

sys.path.insert(0, BUILD)
from ansible_collections.smartos.images.plugins.filter.fleet_report import fleet_report  # noqa: E402  pylint: disable=wrong-import-position

CHROMIUM = '/usr/bin/chromium'
TEMPLATE = os.path.join(REPO, 'playbooks', 'templates', 'fleet_report.html.j2')
# headless, as root, offline: nothing starts that would reach the network or need a display
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-default-apps', '--remote-debugging-pipe', '--window-size=1280,1000']
WAIT = 30  # seconds any one answer of the browser may take


class Chromium:
    """One headless Chromium and one page, spoken to with the DevTools protocol over --remote-debugging-pipe:
    JSON messages ended by NUL, written to its fd 3 and read from its fd 4."""

    def __init__(self, profile):
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail('%s is not installed: this test needs the Debian package chromium '
                        '(make system-deps installs it)' % CHROMIUM)
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # above any descriptor the child's 3 and 4 could be, so that neither dup2 overwrites the other
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        os.close(to_browser)
        os.close(from_browser)

        def pipe_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = open(os.path.join(profile, 'chromium.log'), 'wb')  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
            [CHROMIUM] + FLAGS + ['--user-data-dir=' + os.path.join(profile, 'data'), 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, pass_fds=(3, 4), preexec_fn=pipe_fds,
            start_new_session=True)
        for fd in high:
            os.close(fd)
        self._buffer = b''
        self._id = 0
        self.events = []
        self.session = None

    def _next(self, deadline):
        """The next message from the browser, waiting until the deadline at most."""
        while b'\0' not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('Chromium did not answer within %d s; its log: %s' % (WAIT, self.log_tail()))
            ready, dummy, dummy = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise AssertionError('Chromium closed its DevTools pipe (exit %s); its log: %s'
                                         % (self.proc.poll(), self.log_tail()))
                self._buffer += chunk
        message, dummy, self._buffer = self._buffer.partition(b'\0')
        return json.loads(message)

    def log_tail(self):
        self.log.flush()
        with open(self.log.name, 'rb') as f:
            return f.read()[-2000:].decode('utf-8', 'replace')

    def send(self, method, params=None, page=True):
        """Call one DevTools method (on the page's session unless page=False) and return its result."""
        self._id += 1
        message = {'id': self._id, 'method': method, 'params': params or {}}
        if page and self.session:
            message['sessionId'] = self.session
        os.write(self._out, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + WAIT
        while True:
            answer = self._next(deadline)
            if answer.get('id') == self._id:
                if 'error' in answer:
                    raise AssertionError('%s failed: %s' % (method, answer['error']))
                return answer.get('result', {})
            self.events.append(answer)

    def wait_for(self, event):
        deadline = time.monotonic() + WAIT
        while True:
            for e in self.events:
                if e.get('method') == event:
                    self.events.remove(e)
                    return e
            self.events.append(self._next(deadline))

    def open(self, url):
        target = self.send('Target.createTarget', {'url': 'about:blank'}, page=False)['targetId']
        self.session = self.send('Target.attachToTarget', {'targetId': target, 'flatten': True}, page=False)['sessionId']
        self.send('Page.enable')
        self.send('Runtime.enable')
        self.send('Page.navigate', {'url': url})
        self.wait_for('Page.loadEventFired')

    def js(self, expression):
        """The value of a JavaScript expression in the page."""
        answer = self.send('Runtime.evaluate', {'expression': expression, 'returnByValue': True})
        assert 'exceptionDetails' not in answer, answer['exceptionDetails']
        return answer['result'].get('value')

    def press(self, key, code, keycode, text=None):
        """A key pressed and released, as a keyboard sends it."""
        down = {'type': 'keyDown' if text else 'rawKeyDown', 'key': key, 'code': code,
                'windowsVirtualKeyCode': keycode, 'nativeVirtualKeyCode': keycode}
        if text:
            down['text'] = text
        self.send('Input.dispatchKeyEvent', down)
        self.send('Input.dispatchKeyEvent', {'type': 'keyUp', 'key': key, 'code': code,
                                             'windowsVirtualKeyCode': keycode, 'nativeVirtualKeyCode': keycode})

    def click(self, selector):
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = self.js('(function(){var e=document.querySelector(%s); e.scrollIntoView({block: "center"});'
                      'var r=e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()'
                      % json.dumps(selector))
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent', {'type': kind, 'x': box[0], 'y': box[1], 'button': 'left',
                                                   'clickCount': 1})

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send('Browser.close', page=False)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the process group this test started
            self.proc.wait(timeout=15)
        for fd in (self._in, self._out):
            os.close(fd)
        self.log.close()


@pytest.fixture
def browser(tmp_path):
    b = Chromium(str(tmp_path))
    yield b
    b.close()


def facts(images, sources=('https://images.example.org',)):
    return {'changed': False, 'ansible_facts': {
        'smartos_images': {u: {'manifest': {'uuid': u, 'name': n, 'version': v, 'published_at': p}, 'clones': []}
                           for u, n, v, p in images},
        'smartos_image_sources': [{'url': s, 'type': 'imgapi'} for s in sources], 'smartos_images_layout': 'modern'}}


IMG = [('%08x-0000-4000-8000-000000000000' % i, name, '1.%d' % i, '2024-0%d-01T00:00:00Z' % (i + 1))
       for i, name in enumerate(['minimal', 'base-64', 'zulu', 'alpha'])]


def page(tmp_path, hosts):
    """The report page of these hosts, written as the template module writes it; its file:// URL."""
    with open(TEMPLATE, encoding='utf-8') as f:
        text = f.read()
    html = jinja2.Environment(trim_blocks=True).from_string(text).render(
        fleet_report=fleet_report(hosts, generated_at='2026-01-31T12:00:00Z'))
    path = tmp_path / 'report.html'
    path.write_text(html, encoding='utf-8')
    return 'file://' + str(path)


def fleet():
    """Three hosts with 1, 4 and 2 images: by name b, a, c; by installed count b, c, a."""
    return {'b-host': {'fleet_report_facts': facts(IMG[:1])},
            'a-host': {'fleet_report_facts': facts(IMG), 'image_host_images': [{'uuid': IMG[0][0]}]},
            'c-host': {'fleet_report_facts': facts(IMG[1:3])}}


HOST_ORDER = "Array.from(document.querySelectorAll('#hosts tbody tr')).map(function(r){return r.dataset.host;})"
IMAGE_ORDER = "Array.from(document.querySelectorAll('#images tbody th')).map(function(t){return t.textContent;})"
SORT = ("Array.from(document.querySelectorAll('#%s thead th[aria-sort]')).map(function(t){"
        "return t.textContent.trim() + '=' + t.getAttribute('aria-sort');}).filter(function(s){return !/=none$/.test(s);})")
MARK = ("getComputedStyle(document.querySelector('#%s thead th:nth-child(%d) .ind'), '::after').content")


def test_a_click_on_a_heading_sorts_and_sets_aria_sort(tmp_path, browser):
    browser.open(page(tmp_path, fleet()))
    assert browser.js(HOST_ORDER) == ['a-host', 'b-host', 'c-host']
    assert browser.js(SORT % 'hosts') == [] and browser.js(MARK % ('hosts', 4)) == '"\u2195"'
    installed = '#hosts thead th:nth-child(4) button'
    assert browser.js('document.querySelector(%s).textContent.trim()' % json.dumps(installed)) == 'Installed'
    browser.click(installed)
    assert browser.js(HOST_ORDER) == ['b-host', 'c-host', 'a-host']
    assert browser.js(SORT % 'hosts') == ['Installed=ascending'] and browser.js(MARK % ('hosts', 4)) == '"\u25b2"'
    browser.click(installed)
    assert browser.js(HOST_ORDER) == ['a-host', 'c-host', 'b-host']
    assert browser.js(SORT % 'hosts') == ['Installed=descending'] and browser.js(MARK % ('hosts', 4)) == '"\u25bc"'
    # the other table sorts on its own: by image name, and the hosts table keeps its order and aria-sort
    assert browser.js(IMAGE_ORDER) == ['alpha', 'base-64', 'minimal', 'zulu']
    browser.click('#images thead th:nth-child(1) button')
    browser.click('#images thead th:nth-child(1) button')
    assert browser.js(IMAGE_ORDER) == ['zulu', 'minimal', 'base-64', 'alpha']
    assert browser.js(SORT % 'images') == ['Image=descending'] and browser.js(SORT % 'hosts') == ['Installed=descending']
    assert 'sorted by Image, descending' in browser.js("document.getElementById('sort-status').textContent")


def test_the_keyboard_reaches_a_heading_and_enter_sorts(tmp_path, browser):
    browser.open(page(tmp_path, fleet()))
    target = "document.querySelector('#hosts thead th:nth-child(4) button')"
    stops = []
    for dummy in range(60):  # 4 + 3 image table headings, then Host, Status, Drift, Installed
        browser.press('Tab', 'Tab', 9)
        stops.append(browser.js('document.activeElement.tagName + ":" + document.activeElement.textContent.trim()'))
        if browser.js('document.activeElement === %s' % target):
            break
    else:
        pytest.fail('Tab never reached the Installed heading; focus went to %s' % stops)
    assert stops[:4] == ['BUTTON:Image', 'BUTTON:Version', 'BUTTON:UUID', 'BUTTON:Published'] and len(stops) == 11, stops
    # a visible focus mark, and the heading still unsorted
    assert browser.js("getComputedStyle(document.activeElement).outlineStyle") == 'solid'
    assert browser.js(SORT % 'hosts') == []
    browser.press('Enter', 'Enter', 13, text='\r')
    assert browser.js(HOST_ORDER) == ['b-host', 'c-host', 'a-host']
    assert browser.js(SORT % 'hosts') == ['Installed=ascending']
    browser.press(' ', 'Space', 32, text=' ')
    assert browser.js(HOST_ORDER) == ['a-host', 'c-host', 'b-host']
    assert browser.js(SORT % 'hosts') == ['Installed=descending']
    assert browser.js('document.activeElement === %s' % target)


def test_hostile_names_stay_text_in_the_browser(tmp_path, browser):
    evil_host = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    evil_image = '</td></tr></table><script>window.pwned = 3</script>"\'&middot;'
    hosts = {evil_host: {'fleet_report_facts': facts([(IMG[0][0], evil_image, evil_image, '2024')],
                                                     sources=['http://x.example/"><script>window.pwned=4</script>'])},
             'plain': {'fleet_report_facts': facts(IMG[:1])},
             'gone': {'fleet_report_facts': {'unreachable': True, 'msg': evil_host}}}
    browser.open(page(tmp_path, hosts))
    assert browser.js('window.pwned === undefined')
    assert browser.js("document.querySelectorAll('script').length") == 1
    assert browser.js("document.querySelectorAll('img, table').length") == 2
    assert evil_host in browser.js(HOST_ORDER) and evil_image in browser.js(IMAGE_ORDER)
    browser.click('#hosts thead th:nth-child(1) button')
    assert sorted(browser.js(HOST_ORDER)) == sorted(hosts) and browser.js(SORT % 'hosts') == ['Host=ascending']


def test_many_hosts_sort_by_number_not_text(tmp_path, browser):
    hosts = {'host%03d' % n: {'fleet_report_facts': facts(IMG[:n % 4 + 1])} for n in range(120)}
    browser.open(page(tmp_path, hosts))
    browser.click('#hosts thead th:nth-child(4) button')
    counts = browser.js("Array.from(document.querySelectorAll('#hosts tbody tr')).map(function(r)"
                        "{return +r.cells[3].textContent;})")
    assert len(counts) == 120 and counts == sorted(counts)
