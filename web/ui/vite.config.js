import { defineConfig } from 'vite';

// Relative base so the UI also works behind a reverse proxy under a path prefix.
// `npm run dev` proxies the API to a querier on localhost:10902 (override with VIGIL_QUERIER).
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    sourcemap: false,
  },
  server: {
    proxy: { '/api': process.env.VIGIL_QUERIER || 'http://localhost:10902' },
  },
});
