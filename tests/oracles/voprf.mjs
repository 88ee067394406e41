// A tiny command-line front end to @cloudflare/voprf-ts (pinned in
// package.json), suite ristretto255-SHA512 on @noble/curves, VOPRF mode, so
// the Python tests can cross-check chalicelib.wire.oprf both ways.
//
//   keypair SEED INFO                    -> skS pkS         (DeriveKeyPair)
//   evaluate SKS BLINDED                 -> evaluated proof (server side)
//   blind PKS INPUT                      -> blinded state   (client side)
//   finalize PKS STATE EVALUATED PROOF   -> output          (verifies the proof)
// Arguments and results are hex.  Exit status 1 when voprf-ts refuses.
import {
  Oprf,
  VOPRFClient,
  VOPRFServer,
  Evaluation,
  EvaluationRequest,
  FinalizeData,
  deriveKeyPair,
} from "@cloudflare/voprf-ts";
import { CryptoNoble } from "@cloudflare/voprf-ts/crypto-noble";

Oprf.Crypto = CryptoNoble;
const suite = Oprf.Suite.RISTRETTO255_SHA512;
const hex = (b) => Buffer.from(b).toString("hex");
const bin = (h) => new Uint8Array(Buffer.from(h, "hex"));
const u16 = (n) => Uint8Array.from([n >> 8, n & 0xff]);
const join = (...parts) => new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p))));

async function main([command, ...args]) {
  switch (command) {
    case "keypair": {
      const { privateKey, publicKey } = await deriveKeyPair(
        Oprf.Mode.VOPRF, suite, bin(args[0]), bin(args[1]));
      return [hex(privateKey), hex(publicKey)];
    }
    case "evaluate": {
      const server = new VOPRFServer(suite, bin(args[0]));
      const request = EvaluationRequest.deserialize(suite, join(u16(1), bin(args[1])));
      const evaluation = await server.blindEvaluate(request);
      return [hex(evaluation.evaluated[0].serialize()), hex(evaluation.proof.serialize())];
    }
    case "blind": {
      const client = new VOPRFClient(suite, bin(args[0]));
      const [state, request] = await client.blind([bin(args[1])]);
      return [hex(request.blinded[0].serialize()), hex(state.serialize())];
    }
    case "finalize": {
      const client = new VOPRFClient(suite, bin(args[0]));
      const state = FinalizeData.deserialize(suite, bin(args[1]));
      const evaluation = Evaluation.deserialize(
        suite, join(u16(1), bin(args[2]), Uint8Array.from([Oprf.Mode.VOPRF]), bin(args[3])));
      const [output] = await client.finalize(state, evaluation);
      return [hex(output)];
    }
    default:
      throw new Error(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (out) => process.stdout.write(out.join("\n") + "\n"),
  (err) => {
    process.stderr.write(String(err && err.message ? err.message : err) + "\n");
    process.exit(1);
  },
);
