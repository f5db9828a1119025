// node-postgres (pg) through the sfpg proxy, in autocommit: batches in which Salesforce
// refuses one row (a negative amount breaks Invoice__c's validation rule). A query string
// of several INSERTs is one implicit transaction; queries sent together with Promise.all
// each run on their own. The refusal must reject the query it belongs to, with its
// SQLSTATE, and the connection must stay usable. Prints what happened as JSON for
// tests/proxy_clients.rs. The connection string comes from SFPG_PROXY_URL.

const { Client } = require('pg');

const INSERT = 'INSERT INTO salesforce.invoice__c (account__c, amount__c) VALUES ($1, $2)';

async function settle(promise) {
  try {
    const result = await promise;
    return { ok: result.rowCount ?? null };
  } catch (error) {
    return { error: error.code ?? String(error) };
  }
}

async function main() {
  const client = new Client({ connectionString: process.env.SFPG_PROXY_URL });
  await client.connect();
  const done = {};
  const account = (
    await client.query(
      'SELECT sfid FROM salesforce.account WHERE sfid IS NOT NULL ORDER BY sfid LIMIT 1',
    )
  ).rows[0].sfid;

  // One query string: the refusal fails the whole string, and nothing of it is kept.
  const literal = (amount) =>
    `INSERT INTO salesforce.invoice__c (account__c, amount__c) VALUES ('${account}', ${amount})`;
  done.string = await settle(client.query([literal(1), literal(-1), literal(2)].join('; ')));

  // Queries sent together: only the refused one fails.
  done.together = await Promise.all(
    [3, -3, 4].map((amount) => settle(client.query(INSERT, [account, amount]))),
  );
  done.after = (await client.query('SELECT 40 + 2 AS answer')).rows[0].answer;

  await client.end();
  process.stdout.write(JSON.stringify(done));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
