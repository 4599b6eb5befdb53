// `npm start`: the verifier plus NGINX (unprivileged, in the foreground) with nginx.conf,
// its ports taken from the environment:
//   GATEWAY_PORT 8084, VERIFIER_PORT 8086, API_PORT 8083 (examples/resource-server-node),
//   ISSUER, AUDIENCE, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET (see verifier.mjs),
//   NGINX /usr/sbin/nginx.
// SIGTERM or SIGINT stops both.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { settings, startVerifier } from "./verifier.mjs";

const config = settings();
const ports = {
  "127.0.0.1:8084": process.env.GATEWAY_PORT ?? "8084",
  "127.0.0.1:8086": String(config.port),
  "127.0.0.1:8083": process.env.API_PORT ?? "8083",
};

export function render(template) {
  let conf = template;
  for (const [address, port] of Object.entries(ports)) conf = conf.replaceAll(address, `127.0.0.1:${port}`);
  return conf;
}

const verifier = await startVerifier(config);
const prefix = mkdtempSync(join(tmpdir(), "tessera-gateway-"));
mkdirSync(join(prefix, "tmp"));
writeFileSync(join(prefix, "nginx.conf"), render(readFileSync(new URL("./nginx.conf", import.meta.url), "utf8")));
const nginx = spawn(process.env.NGINX ?? "/usr/sbin/nginx",
  ["-p", prefix, "-e", "stderr", "-c", "nginx.conf", "-g", "daemon off;"], { stdio: "inherit" });
console.log(`gateway on http://127.0.0.1:${ports["127.0.0.1:8084"]} (nginx prefix ${prefix})`);

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  verifier.close();
  if (nginx.exitCode === null) nginx.kill("SIGQUIT"); // graceful shutdown
  nginx.once("exit", () => { rmSync(prefix, { recursive: true, force: true }); process.exit(code); });
  if (nginx.exitCode !== null) nginx.emit("exit");
}
nginx.on("exit", (code) => { if (!stopping) { console.error(`nginx exited (${code})`); stop(1); } });
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => stop(0));
