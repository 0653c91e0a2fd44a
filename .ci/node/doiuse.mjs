// node doiuse.mjs CLIENT[,CLIENT…] FILE…: for each client, the doiuse-email errors of every file, as JSON
// {"client": {"file": ["error", …]}}. The tests call it on the HTML part of the messages digest builds.
import fs from 'node:fs';
import { doIUseEmail } from 'doiuse-email';

const [clients, ...files] = process.argv.slice(2);
const report = {};
for (const client of clients.split(',')) {
  report[client] = {};
  for (const file of files) {
    const result = doIUseEmail(fs.readFileSync(file, 'utf8'), { emailClients: [client] });
    report[client][file] = result.success ? [] : result.errors;
  }
}
process.stdout.write(JSON.stringify(report));
