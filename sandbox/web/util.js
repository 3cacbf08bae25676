// Shared helpers of the sandbox page. Text always goes in through textContent, never innerHTML.
"use strict";

window.Sandbox = (function () {
  const API = "/sandbox/api/";

  // WeCom's session states (https://developer.work.weixin.qq.com/document/path/94669). State 4 is both
  // "ended" and "not started": a fresh session is 4 before anything happened.
  const STATE_LABELS = {
    0: "未处理 new",
    1: "智能助手接待 bot",
    2: "排队中 queued",
    3: "人工接待 human",
    4: "已结束/未开始 ended / not started",
  };

  // The chat header's label [Chinese, English]: state 4 reads "未开始" until the session has been live
  // ("started"), "已结束" after.
  const SESSION_LABELS = {
    0: ["未处理", "new"],
    1: ["智能助手接待", "bot"],
    2: ["排队中", "queued"],
    3: ["人工接待", "human"],
  };
  function sessionLabel(state, started) {
    if (state === 4) return started ? ["已结束", "ended"] : ["未开始", "not started"];
    return SESSION_LABELS[state] || [String(state), ""];
  }

  // Whether the emulator answers: every request reports here (an HTTP answer, even an error, means
  // connected; no answer, a network error or a timeout means not).
  const connectionListeners = [];
  function onConnection(listener) {
    connectionListeners.push(listener);
  }
  function reportConnection(ok) {
    connectionListeners.forEach((listener) => listener(ok));
  }

  function $(id) {
    return document.getElementById(id);
  }

  // Build an element; children may be nodes or strings (always inserted as text).
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (value === undefined || value === null || value === false) return;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach((child) => {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function bilingual(zh, en) {
    return [zh + " ", el("span", { className: "en", text: en })];
  }

  // timeoutMs: give up (and report no connection) when the answer takes longer, e.g. a long-poll's
  // wait plus a margin; without it a stalled server would leave the page looking connected.
  async function request(method, path, body, timeoutMs) {
    const init = { method: method, headers: {} };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const controller = timeoutMs && window.AbortController ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : null;
    if (controller) init.signal = controller.signal;
    let resp;
    try {
      resp = await fetch(API + path, init);
    } catch (err) {
      reportConnection(false);
      throw new Error(controller && controller.signal.aborted ? "超时 timed out" : "无法连接 no connection");
    } finally {
      if (timer) clearTimeout(timer);
    }
    reportConnection(true);
    let data = null;
    try {
      data = await resp.json();
    } catch (err) {
      data = null;
    }
    if (!resp.ok) {
      const reason = data && (data.error || data.errmsg) ? data.error || data.errmsg : "HTTP " + resp.status;
      throw new Error(String(reason));
    }
    return data || {};
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(ts) {
    const d = ts ? new Date(ts * 1000) : new Date();
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function clip(text, n) {
    const s = String(text === undefined || text === null ? "" : text).replace(/\s+/g, " ");
    return s.length > n ? s.slice(0, n) + "…" : s;
  }

  // Replace a node's content with a Chinese label and its short English beside it.
  function setBilingual(node, zh, en) {
    node.textContent = "";
    bilingual(zh, en).forEach((n) => node.appendChild(typeof n === "string" ? document.createTextNode(n) : n));
  }

  return { STATE_LABELS, sessionLabel, onConnection, $, el, bilingual, setBilingual, request, sleep, clock, clip };
})();
