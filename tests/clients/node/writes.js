// node-postgres (pg) through the sfpg proxy, with parameters: INSERT … RETURNING sfid,
// UPDATE, DELETE in autocommit, and an explicit transaction. Prints what it did as JSON
// for tests/proxy_clients.rs. The connection string comes from SFPG_PROXY_URL.

const { Client } = require('pg');

async function main() {
  const client = new Client({ connectionString: process.env.SFPG_PROXY_URL });
  await client.connect();
  const done = {};

  const inserted = await client.query(
    'INSERT INTO salesforce.account (name, billingcity) VALUES ($1, $2) RETURNING id, sfid',
    ['Node Co', 'Grenoble'],
  );
  done.inserted = inserted.rows[0].sfid;

  const existing = await client.query(
    'SELECT id, sfid FROM salesforce.account WHERE sfid IS NOT NULL AND id <> $1 ORDER BY id LIMIT 2',
    [inserted.rows[0].id],
  );
  await client.query('UPDATE salesforce.account SET billingcity = $1 WHERE id = $2', [
    'Dijon',
    existing.rows[0].id,
  ]);
  done.updated = existing.rows[0].sfid;

  await client.query('BEGIN');
  await client.query('UPDATE salesforce.account SET name = $1 WHERE id = $2', ['Node Renamed', existing.rows[1].id]);
  await client.query('COMMIT');
  done.renamed = existing.rows[1].sfid;

  await client.query('DELETE FROM salesforce.account WHERE sfid = $1', [done.inserted]);
  done.deleted = done.inserted;

  await client.end();
  process.stdout.write(JSON.stringify(done));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
