import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // openid-client runs on the server (route handlers, server components, proxy.ts) only.
  serverExternalPackages: ["openid-client"],
  poweredByHeader: false,
  // `next dev` would otherwise write an AGENTS.md into this example's directory.
  agentRules: false,
  experimental: { agentUpgrade: false },
};

export default nextConfig;
