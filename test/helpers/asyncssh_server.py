"""A small asyncssh SSH server for the ssh-tether test matrix (test/helpers/servers.ts).

Run with Debian's /usr/bin/python3 (python3-asyncssh), as the login user (the harness uses
setpriv), so commands run as that user:

    asyncssh_server.py CONFIG_JSON

CONFIG_JSON: {"host", "port", "host_key", "authorized_keys", "username", "home",
"listen": {extra keyword arguments for asyncssh.listen, e.g. "rekey_seconds": 3}}.

What it serves, as a typical asyncssh application does:
- exec and shell requests: the command runs through the user's login shell (`shell -c command`)
  in the home directory, with the client's `env` requests applied, stdin/stdout/stderr piped,
  exit status or exit signal reported; `signal` requests are forwarded to the child.
- the `sftp` subsystem: asyncssh's own SFTPServer (paths as the user sees them).
- direct-tcpip (local forwards) and tcpip-forward (remote forwards): asyncssh's defaults,
  allowed for this user.

Prints "LISTENING <port>" on stdout once it accepts connections.
"""

import asyncio
import json
import os
import pwd
import signal as signal_mod
import sys
import warnings

warnings.simplefilter('ignore')  # cryptography deprecation noise from asyncssh's imports

import asyncssh  # noqa: E402

CONFIG = json.loads(sys.argv[1])
USER = pwd.getpwuid(os.getuid())
SHELL = USER.pw_shell or '/bin/sh'
HOME = CONFIG.get('home') or USER.pw_dir


class Server(asyncssh.SSHServer):
    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return False

    def connection_requested(self, dest_host, dest_port, orig_host, orig_port):
        return True

    def server_requested(self, listen_host, listen_port):
        return True


_orig_signal_received = asyncssh.SSHServerProcess.signal_received


def _signal_received(self, signal):
    """Forward an RFC 4254 6.9 signal request to the command (asyncssh leaves this to the app)."""
    child = getattr(self, '_tether_child', None)
    signum = getattr(signal_mod, 'SIG' + signal, None)
    if child is not None and child.returncode is None and signum is not None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass
    else:
        _orig_signal_received(self, signal)


asyncssh.SSHServerProcess.signal_received = _signal_received


async def pump_out(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()


async def pump_in(reader, child_stdin):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            child_stdin.write(data)
            await child_stdin.drain()
    except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
        pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try:
            child_stdin.close()
        except Exception:
            pass


async def handle_process(process):
    env = {
        'HOME': HOME,
        'USER': USER.pw_name,
        'LOGNAME': USER.pw_name,
        'SHELL': SHELL,
        'PATH': '/usr/local/bin:/usr/bin:/bin',
    }
    if 'TETHER_TEST_SERVER' in os.environ:  # lets the harness find escaped session processes
        env['TETHER_TEST_SERVER'] = os.environ['TETHER_TEST_SERVER']
    env.update(process.env or {})
    command = process.command
    argv = [SHELL, '-c', command] if command is not None else [SHELL]
    try:
        child = await asyncio.create_subprocess_exec(
            *argv, cwd=HOME, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        process.stderr.write(('cannot run shell: %s\n' % exc).encode())
        process.exit(127)
        return
    process._tether_child = child
    stdin_task = asyncio.ensure_future(pump_in(process.stdin, child.stdin))
    try:
        await asyncio.gather(pump_out(child.stdout, process.stdout),
                             pump_out(child.stderr, process.stderr))
        code = await child.wait()
    except (asyncssh.Error, ConnectionError, BrokenPipeError):
        # The client went away: end the command as sshd does when a session closes.
        if child.returncode is None:
            try:
                child.kill()
            except ProcessLookupError:
                pass
        stdin_task.cancel()
        return
    stdin_task.cancel()
    if code < 0:
        name = signal_mod.Signals(-code).name[3:]
        process.exit_with_signal(name)
    else:
        process.exit(code)


async def main():
    listen = dict(CONFIG.get('listen') or {})
    server = await asyncssh.listen(
        CONFIG['host'], CONFIG['port'],
        server_factory=Server,
        server_host_keys=[CONFIG['host_key']],
        authorized_client_keys=CONFIG['authorized_keys'],
        process_factory=handle_process,
        sftp_factory=True,
        allow_scp=True,
        encoding=None,
        agent_forwarding=False,
        x11_forwarding=False,
        **listen)
    port = server.sockets[0].getsockname()[1]
    print('LISTENING %d' % port, flush=True)
    await asyncio.Event().wait()


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
