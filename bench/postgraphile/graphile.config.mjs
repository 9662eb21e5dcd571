// PostGraphile 5 as the fourth server of Keyplane's load run (bench/run.sh):
// the Amber preset over its own database (DATABASE_URL, keyplane_bench_pgl
// in the run), schema public, where run.sh copies the team and devices of
// keyplane_bench. Production settings: no GraphiQL (Ruru), no watch mode, no
// websockets, no EXPLAIN, no subscriptions.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  throw new Error("graphile.config.mjs: set DATABASE_URL to the postgres:// URL of its database");
}

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // 20 connections, as the pools of Keyplane, the floor and the baseline
      // (node-postgres would open 10), kept for 30 minutes when idle, as
      // pgx keeps them (node-postgres would close them after 10 s, between
      // two of the run's rounds, and open them again, new backends, in the
      // next).
      poolConfig: { max: 20, idleTimeoutMillis: 30 * 60 * 1000 },
      // No LISTEN/NOTIFY client: nothing subscribes.
      pubsub: false,
    }),
  ],
  grafserv: {
    graphqlPath: "/graphql",
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    watch: false,
    websockets: false,
  },
  grafast: {
    explain: false,
  },
};

export default preset;
