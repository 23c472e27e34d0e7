// Reference EIP-712 hashes: ethers' TypedDataEncoder (npm ethers), the independent
// implementation that service/evidence/eip712.py is tested against for every entry type.
//
//   node scripts/ethers_typed_data.mjs < documents.json
//
// Input: one JSON array on stdin of eth_signTypedData_v4 documents ({types, primaryType,
// domain, message}; EIP712Domain in types is ignored: ethers derives it from the domain).
// Output: one JSON array, per document {"struct_hash": "0x…", "digest": "0x…"} or
// {"error": "message"} when ethers refuses the document.
import { readFileSync } from "node:fs";
import { TypedDataEncoder } from "ethers";

const documents = JSON.parse(readFileSync(0, "utf8"));
const answers = documents.map((doc) => {
  try {
    const types = { ...doc.types };
    delete types.EIP712Domain;
    const encoder = TypedDataEncoder.from(types);
    return {
      primary: encoder.primaryType,
      struct_hash: encoder.hash(doc.message),
      digest: TypedDataEncoder.hash(doc.domain, types, doc.message),
    };
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
});
process.stdout.write(JSON.stringify(answers) + "\n");
