// Tally dashboard: the pages' own behaviour (sign-in, charts, consistency check, verify
// page wiring). No framework; htmx (refresh) and uPlot (charts) are committed assets, and
// the receipt verifier is its own bundle. Nothing here sends a state-changing /v1 request.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const page = document.body.dataset.page;

  function say(el, text, cls) {
    if (!el) return;
    el.textContent = text;
    el.className = cls || "";
  }

  async function postJson(url, body) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    if (!r.ok) {
      const err = data && data.error ? data.error : { code: "http_" + r.status, message: r.statusText };
      throw new Error(err.code + ": " + err.message);
    }
    return data;
  }

  function hexOf(bytes) {
    return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- sign-in (My account) --------------------------------------------------------------

  function initAccount() {
    const out = $("#signin-result");
    const out_ = (t, c) => say(out, t, c);
    const wallet = $("#wallet-sign");
    if (wallet && window.ethereum && typeof window.ethereum.request === "function") {
      wallet.hidden = false;
    }
    const getChallenge = async () => {
      const address = $("#address").value.trim();
      const got = await postJson("/v1/auth/challenge", { address });
      $("#challenge").value = got.message;
      return got.message;
    };
    const finish = async (token) => {
      await postJson("/session", { token });
      window.location.reload();
    };
    const button = $("#get-challenge");
    if (button) {
      button.addEventListener("click", async () => {
        try {
          await getChallenge();
          out_("Challenge ready: sign it, paste the signature, then Sign in.");
          $("#signature").focus();
        } catch (e) {
          out_("Could not get a challenge: " + e.message, "bad");
        }
      });
    }
    if (wallet) {
      wallet.addEventListener("click", async () => {
        try {
          if (!$("#address").value.trim()) {
            const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
            $("#address").value = accounts[0];
          }
          const message = $("#challenge").value || (await getChallenge());
          const hexMessage = hexOf(new TextEncoder().encode(message));
          const signature = await window.ethereum.request({
            method: "personal_sign",
            params: [hexMessage, $("#address").value.trim()],
          });
          $("#signature").value = signature;
          const token = await postJson("/v1/auth/token", { message, signature });
          await finish(token.access_token);
        } catch (e) {
          out_("Wallet sign-in failed: " + e.message, "bad");
        }
      });
    }
    const form = $("#signin");
    if (form) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          const message = $("#challenge").value;
          if (!message) throw new Error("get a challenge first");
          const signature = $("#signature").value.trim();
          const token = await postJson("/v1/auth/token", { message, signature });
          out_("Signed in; loading your account…", "ok");
          await finish(token.access_token);
        } catch (e) {
          out_("Sign-in failed: " + e.message, "bad");
        }
      });
    }
    const keyForm = $("#apikey-form");
    if (keyForm) {
      keyForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          await finish($("#apikey").value.trim());
        } catch (e) {
          out_("API key refused: " + e.message, "bad");
        }
      });
    }
    const signOut = $("#sign-out");
    if (signOut) {
      signOut.addEventListener("click", async () => {
        await postJson("/session/end", {});
        window.location.reload();
      });
    }
  }

  // --- checkpoints: size chart, and a consistency proof re-verified in the page -------
  // (verifyConsistency is the verifier bundle's RFC 9162 check, on WebCrypto SHA-256)

  function initCheckpoints() {
    const data = $("#cp-data");
    if (!data) return;
    const series = JSON.parse(data.textContent);
    const chartEl = $("#cp-chart");
    if (window.uPlot && chartEl && series.length) {
      const timed = series.every((p) => p.t !== null);
      const xs = series.map((p) => (timed ? p.t : p.seq));
      const ys = series.map((p) => p.size);
      const width = Math.max(280, Math.min(1100, chartEl.clientWidth || 800));
      new window.uPlot(
        {
          width,
          height: 260,
          scales: { x: { time: timed } },
          series: [
            { label: timed ? "time" : "checkpoint" },
            { label: "tree size", stroke: "#0b5cad", width: 2, points: { show: true, size: 7 } },
          ],
          axes: [{}, { label: "entries" }],
        },
        [xs, ys],
        chartEl
      );
    }
    const form = $("#consistency");
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = $("#cons-result");
      const row = (seq) => document.querySelector(`#checkpoints tr[data-seq="${seq}"]`).dataset;
      let a = row($("#cons-from").value);
      let b = row($("#cons-to").value);
      if (Number(a.size) > Number(b.size)) [a, b] = [b, a];
      say(out, "Fetching the proof…");
      try {
        const r = await fetch(`/v1/log/proof/consistency?from=${a.size}&to=${b.size}`, {
          headers: { Accept: "application/json" },
        });
        const body = await r.json();
        if (!r.ok) throw new Error(body.error ? body.error.code : "http_" + r.status);
        const verifier = window.tallyVerifier;
        if (!verifier) throw new Error("the verifier bundle did not load");
        const ok = await verifier.verifyConsistency(
          Number(a.size),
          Number(b.size),
          verifier.hexToBytes(a.root),
          verifier.hexToBytes(b.root),
          body.proof.map(verifier.hexToBytes)
        );
        say(
          out,
          ok
            ? `Consistent: checkpoint #${a.seq} (size ${a.size}) is a prefix of #${b.seq} (size ${b.size}); ${body.proof.length} proof hashes verified in this browser.`
            : `NOT consistent: the proof from size ${a.size} to ${b.size} does not verify against the anchored roots.`,
          ok ? "ok" : "bad"
        );
      } catch (e) {
        say(out, "Could not check: " + e.message, "bad");
      }
    });
  }

  // --- round payout shares --------------------------------------------------------------

  function initRound() {
    const data = $("#share-data");
    const el = $("#share-chart");
    if (!data || !el || !window.uPlot) return;
    const shares = JSON.parse(data.textContent);
    if (!shares.length) return;
    const xs = shares.map((_, i) => i);
    // display only: an integer amount in whole tokens, as a float for the chart's scale
    const ys = shares.map((s) => Number(BigInt(s.amount) / 10n ** 12n) / 1e6);
    const bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.6, 80] }) : null;
    new window.uPlot(
      {
        width: Math.max(280, Math.min(1100, el.clientWidth || 800)),
        height: 240,
        scales: { x: { time: false, range: [-0.5, shares.length - 0.5] } },
        axes: [
          {
            values: (u, splits) =>
              splits.map((i) => (shares[i] ? shares[i].account.slice(0, 8) + "…" : "")),
            incrs: [1],
          },
          { label: "tokens" },
        ],
        series: [
          { label: "payee" },
          { label: "payout", stroke: "#0b5cad", fill: "#0b5cad88", paths: bars, points: { show: false } },
        ],
      },
      [xs, ys],
      el
    );
  }

  // --- verify a receipt (the bundle does the checking) ------------------------------------

  function initVerify() {
    const area = $("#receipt");
    const drop = $("#drop");
    const file = $("#file");
    const readFile = (f) => f.text().then((t) => (area.value = t));
    if (file) file.addEventListener("change", () => file.files[0] && readFile(file.files[0]));
    if (drop) {
      drop.addEventListener("dragover", (ev) => {
        ev.preventDefault();
        drop.classList.add("over");
      });
      drop.addEventListener("dragleave", () => drop.classList.remove("over"));
      drop.addEventListener("drop", (ev) => {
        ev.preventDefault();
        drop.classList.remove("over");
        const f = ev.dataTransfer.files[0];
        if (f) readFile(f);
      });
      drop.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          file.click();
        }
      });
    }
    const form = $("#verify-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const verdict = $("#verdict");
      const list = $("#checks");
      list.textContent = "";
      const button = $("#verify-button");
      button.disabled = true;
      try {
        const verifier = window.tallyVerifier;
        if (!verifier) throw new Error("the verifier bundle did not load");
        const config = JSON.parse($("#verify-config").textContent);
        // the JSON text itself: the bundle reads its integers exactly
        const report = await verifier.verifyReceipt(area.value, {
          rpcUrl: $("#rpc").value.trim(),
          trusted: {
            ledger: config.ledger,
            registry: config.registry,
            chainId: config.chain_id,
            source: "this dashboard's deployment",
          },
        });
        for (const c of report.checks) {
          const li = document.createElement("li");
          const state = c.ok === true ? "pass" : c.ok === false ? "fail" : "skipped";
          li.className = state;
          li.dataset.check = c.name;
          li.dataset.state = state;
          const mark = document.createElement("span");
          mark.className = "mark";
          mark.textContent = { pass: "PASS", fail: "FAIL", skipped: "SKIP" }[state];
          const name = document.createElement("code");
          name.textContent = c.name;
          li.append(mark, name, document.createTextNode(c.detail ? ": " + c.detail : ""));
          list.append(li);
        }
        const fields = $("#fields");
        fields.textContent = "";
        if (report.fields) {
          // a reduced receipt: what it proves and what its holder chose to hide
          const values = report.fields.values || {};
          const proven = report.fields.proven.map((f) => `${f} = ${JSON.stringify(values[f])}`);
          say(fields, `Proven: ${proven.join(", ") || "none"}. Hidden: ${report.fields.hidden.join(", ") || "none"}.`);
        }
        const failed = report.checks.filter((c) => c.ok === false).map((c) => c.name);
        say(
          verdict,
          report.verdict || (failed.length ? "FAIL: " + failed.join(", ") : "PASS"),
          failed.length ? "bad" : "ok"
        );
      } catch (e) {
        say(verdict, "Could not verify: " + e.message, "bad");
      } finally {
        button.disabled = false;
      }
    });
  }

  const init = { account: initAccount, checkpoints: initCheckpoints, rounds: initRound, verify: initVerify };
  document.addEventListener("DOMContentLoaded", () => {
    if (init[page]) init[page]();
  });
})();
