import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // openid-client runs on the server (route handlers, server components, proxy.ts) only.
  serverExternalPackages: ["openid-client"],
  poweredByHeader: false,
};

export default nextConfig;
