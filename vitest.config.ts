import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // Model and notebook tests load real weights and run a Jupyter kernel: minutes, not ms.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Two cores: run test files one at a time so timing-heavy model tests do not starve each other.
    fileParallelism: false,
    pool: "forks",
  },
});
