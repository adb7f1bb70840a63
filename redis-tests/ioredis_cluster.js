// ioredis's Cluster client against the nodes given on the command line:
// writes and reads keys across every master, a pipeline, a multi-key
// command in one slot; prints "ok" when all of it worked.
const Redis = require("ioredis");

async function main() {
  const ports = process.argv.slice(2).map(Number);
  const cluster = new Redis.Cluster(ports.map((port) => ({ host: "127.0.0.1", port })), {
    redisOptions: { connectTimeout: 5000 },
  });
  for (let i = 0; i < 300; i++) await cluster.set(`io:${i}`, String(i));
  for (let i = 0; i < 300; i++) {
    const value = await cluster.get(`io:${i}`);
    if (value !== String(i)) throw new Error(`io:${i} is ${value}`);
  }
  const pipeline = cluster.pipeline();
  for (let i = 0; i < 20; i++) pipeline.incr(`{io}counter:${i}`);
  const results = await pipeline.exec();
  if (results.some(([err, n]) => err || n !== 1)) throw new Error(`pipeline: ${JSON.stringify(results)}`);
  await cluster.mset("{io}a", "1", "{io}b", "2");
  const both = await cluster.mget("{io}a", "{io}b");
  if (both.join(",") !== "1,2") throw new Error(`mget: ${both}`);
  await cluster.quit();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
