// Child process of security.test.ts (item 22): one SshClient with strictHostKeyChecking
// 'accept-new' against a shared known_hosts file. argv[2]: JSON client options. Exit 0 on success.
import { SshClient, type SshClientOptions } from '../../src/index.js';

const o = JSON.parse(process.argv[2] ?? '{}') as SshClientOptions;
const ssh = new SshClient(o);
ssh
  .exec('true')
  .then(async (r) => {
    await ssh.close();
    process.exitCode = r.exitCode === 0 ? 0 : 3;
  })
  .catch(async (err: unknown) => {
    console.error(err);
    await ssh.close();
    process.exitCode = 2;
  });
