// A real OpenID Connect provider for the sign-in tests: the certified `oidc-provider` package
// (npm, installed by scripts/test.sh), on loopback, with its development login and consent
// pages. Any login name signs in as that user, whose `groups` claim lists their teams.
//
//   node oidc-provider.mjs PORT REDIRECT_URI
//
// Prints "ready" once it listens. The package is found in NODE_PATH (ES modules do not
// search it by themselves).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = (process.env.NODE_PATH || "").split(":").filter(Boolean)[0] || "node_modules";
const { default: Provider } = await import(
  pathToFileURL(join(modules, "oidc-provider", "lib", "index.js")).href
);

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "bichito",
      client_secret: "bichito-test-secret",
      redirect_uris: [redirectUri],
      response_types: ["code"],
      grant_types: ["authorization_code"],
    },
  ],
  scopes: ["openid", "profile", "email", "groups"],
  claims: { openid: ["sub"], email: ["email"], groups: ["groups"] },
  // The ID token carries every claim asked for (bichito reads `groups` from it).
  conformIdTokenClaims: false,
  findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.com`, groups: ["payments", "web"] };
      },
    };
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["bichito-test-cookie-key"] },
});

const server = provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
