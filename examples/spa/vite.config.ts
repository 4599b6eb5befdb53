// The app reads where Tessera and the API are from /config.json, answered from the
// environment when the dev or preview server starts (so one build runs anywhere):
//   ISSUER    http://localhost:4000/realms/examples
//   CLIENT_ID spa
//   API_URL   http://localhost:8083   (examples/resource-server-node)
//   PORT      5173  (the realm registers http://localhost:5173/callback for the client spa;
//             it listens on 127.0.0.1: open http://localhost:5173, the registered origin)
import { defineConfig, type Connect, type Plugin } from "vite";

const PORT = Number(process.env.PORT ?? 5173);

function runtimeConfig(): Plugin {
  const body = JSON.stringify({
    issuer: process.env.ISSUER ?? "http://localhost:4000/realms/examples",
    clientId: process.env.CLIENT_ID ?? "spa",
    apiUrl: process.env.API_URL ?? "http://localhost:8083",
  });
  const serve: Connect.NextHandleFunction = (req, res, next) => {
    if (req.url !== "/config.json") return next();
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Cache-Control", "no-store");
    res.end(body);
  };
  return {
    name: "tessera-runtime-config",
    configureServer: (server) => void server.middlewares.use(serve),
    configurePreviewServer: (server) => void server.middlewares.use(serve),
  };
}

export default defineConfig({
  plugins: [runtimeConfig()],
  server: { host: "127.0.0.1", port: PORT, strictPort: true },
  preview: { host: "127.0.0.1", port: PORT, strictPort: true },
});
