// The console is built into web/dist (or AIAAS_WEB_OUT) and embedded into the aiaas
// binary by crates/api/build.rs. Relative asset paths: served from /, works offline.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: process.env.AIAAS_WEB_OUT ?? "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  test: {
    include: ["test/unit/**/*.test.ts"],
    environment: "node",
  },
});
