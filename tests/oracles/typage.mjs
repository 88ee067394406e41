// A tiny command-line front end to typage (npm `age-encryption`, pinned in
// package.json) so the Python tests can drive it through subprocess.
//
//   node typage.mjs keygen x25519|pq         -> prints identity\nrecipient
//   node typage.mjs to-recipient IDENTITY    -> prints the recipient
//   node typage.mjs encrypt [--armor] RECIPIENT... < plaintext > ciphertext
//   node typage.mjs decrypt IDENTITY...      < ciphertext > plaintext
//   node typage.mjs encrypt-passphrase PASS < plaintext > ciphertext
//   node typage.mjs decrypt-passphrase PASS < ciphertext > plaintext
// Exit status 1 with the error on stderr when typage refuses the input.
import * as age from "age-encryption";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

function write(bytes) {
  return new Promise((resolve, reject) =>
    process.stdout.write(Buffer.from(bytes), (err) => (err ? reject(err) : resolve())),
  );
}

async function main(argv) {
  const [command, ...args] = argv;
  switch (command) {
    case "keygen": {
      const identity =
        args[0] === "pq" ? await age.generateHybridIdentity() : await age.generateX25519Identity();
      const recipient = await age.identityToRecipient(identity);
      await write(new TextEncoder().encode(`${identity}\n${recipient}\n`));
      return;
    }
    case "to-recipient": {
      await write(new TextEncoder().encode(`${await age.identityToRecipient(args[0])}\n`));
      return;
    }
    case "encrypt":
    case "encrypt-passphrase": {
      const armor = args[0] === "--armor";
      const rest = armor ? args.slice(1) : args;
      const e = new age.Encrypter();
      if (command === "encrypt-passphrase") {
        e.setScryptWorkFactor(Number(process.env.TYPAGE_SCRYPT_WORK_FACTOR ?? "18"));
        e.setPassphrase(rest[0]);
      } else {
        for (const r of rest) e.addRecipient(r);
      }
      const ciphertext = await e.encrypt(await readStdin());
      await write(armor ? new TextEncoder().encode(age.armor.encode(ciphertext)) : ciphertext);
      return;
    }
    case "decrypt":
    case "decrypt-passphrase": {
      const d = new age.Decrypter();
      if (command === "decrypt-passphrase") d.addPassphrase(args[0]);
      else for (const i of args) d.addIdentity(i);
      let input = await readStdin();
      const text = new TextDecoder().decode(input.subarray(0, 64));
      if (text.trimStart().startsWith("-----BEGIN")) {
        input = age.armor.decode(new TextDecoder().decode(input));
      }
      await write(await d.decrypt(input));
      return;
    }
    default:
      throw new Error(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`typage: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
