// Protocol pane of the sandbox page: every callback and API call in order, limits highlighted.
"use strict";

window.SandboxProtocol = (function () {
  const { STATE_LABELS, el, setBilingual, request, sleep, clock, clip } = window.Sandbox;
  const POLL_WAIT_SECONDS = 20;
  const MAX_PROTOCOL_ENTRIES = 600; // bounded: the page may stay open all day
  const MAX_BODY_CHARS = 6000;
  const LIMIT_NOTES = {
    "-1": "系统繁忙 system busy",
    40001: "Secret 无效 invalid secret",
    40007: "media_id 无效 invalid media_id",
    40014: "access_token 无效 invalid access_token",
    40058: "参数无效（如 msgid 重复、超长）invalid parameter (e.g. msgid exists, too long)",
    41001: "缺少 access_token missing access_token",
    42001: "access_token 过期 access_token expired",
    45009: "调用频率超限 rate limited",
    45033: "并发超限 too many concurrent calls",
    95000: "open_kfid 无效 invalid open_kfid",
    95001: "超过 5 条发送上限 over the 5-message budget",
    95002: "超过 48 小时发送窗口 past the 48 h window",
    95007: "消息 token 无效 invalid sync_msg token",
    95008: "菜单项超过 10 个 too many menu items",
    95009: "菜单项类型无效 invalid menu item type",
    95013: "会话已结束 session already ended",
    95014: "不是接待人员 not a receptionist",
    95016: "不允许的状态变更 state change not allowed",
    95018: "会话状态不允许发送 session state forbids sending",
    95019: "接待人员已停止接待 receptionist stopped receiving",
  };
  const ui = {};
  const state = { next: 0, limits: 0 };
  let hooks = { nickname: (user) => user, onStateChange: async () => {} };

  function showBody(value) {
    let text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    if (text === undefined) text = "";
    if (text.length > MAX_BODY_CHARS) text = text.slice(0, MAX_BODY_CHARS) + "\n… (" + text.length + " chars)";
    return el("pre", { text: text });
  }

  function callbackFailed(entry) {
    const status = (entry.response || {}).status;
    return entry.kind === "callback" && !(status >= 200 && status < 300);
  }

  function isLimit(entry) {
    const code = entry.errcode;
    return code !== undefined && code !== null && Number(code) !== 0;
  }

  function bodyPreview(body) {
    const type = body.msgtype || "";
    const inner = body[type] || {};
    if (type === "text") return "text “" + clip(inner.content, 28) + "”";
    if (type === "msgmenu") return "msgmenu “" + clip(inner.head_content, 20) + "”";
    return type + (inner.media_id ? " " + clip(inner.media_id, 12) : "");
  }

  // One line under the call so the pane reads without opening every entry.
  function summarize(entry) {
    const req = entry.request || {};
    const body = req.body || {};
    const resp = entry.response || {};
    const api = entry.api || "";
    if (isLimit(entry)) return clip(resp.errmsg, 60);
    if (entry.kind === "callback") {
      const tries = req.attempt > 1 ? " (重试 retry " + req.attempt + ")" : "";
      const outcome = resp.status ? "HTTP " + resp.status : "✗ " + (resp.error || "no answer");
      return outcome + tries;
    }
    if (api === "kf/sync_msg") {
      const list = Array.isArray(resp.msg_list) ? resp.msg_list : [];
      const origins = list.map((m) => (m.origin === 3 ? "客户" : m.origin === 5 ? "人工" : "事件"));
      return list.length + " 条 msgs" + (origins.length ? " [" + origins.join(",") + "]" : "") + ", has_more " + (resp.has_more || 0);
    }
    if (api === "kf/send_msg") return "→ " + hooks.nickname(body.touser || "") + ": " + bodyPreview(body);
    if (api === "kf/send_msg_on_event") return "→ 欢迎/事件 event: " + bodyPreview(body);
    if (api.startsWith("kf/service_state")) {
      const state = body.service_state !== undefined ? body.service_state : resp.service_state;
      return state === undefined ? "" : "state " + state + " " + (STATE_LABELS[state] || "");
    }
    if (api.startsWith("media/")) {
      const q = req.query || {};
      return [q.type, resp.media_id || q.media_id].filter(Boolean).map((x) => clip(x, 24)).join(" ");
    }
    return "";
  }

  function protocolNode(entry) {
    const limit = isLimit(entry);
    const code = entry.errcode === undefined || entry.errcode === null ? "" : "errcode " + entry.errcode;
    const line = summarize(entry);
    const summary = el("summary", {}, [
      el("div", { className: "proto-row" }, [
        el("span", { className: "proto-seq", text: "#" + entry.seq }),
        el("span", { className: "proto-time", text: clock(entry.time) }),
        el("span", { className: "proto-kind", text: entry.kind || "api" }),
        el("span", { className: "proto-api", text: entry.api || "" }),
        el("span", { className: "proto-code", text: code }),
      ]),
      line ? el("div", { className: "proto-summary", text: line }) : null,
      limit
        ? el("div", {
            className: "proto-limit-note",
            "data-testid": "protocol-limit",
            text: "⚠ " + (LIMIT_NOTES[entry.errcode] || "已拒绝 rejected"),
          })
        : null,
    ]);
    const details = el("details", {}, [
      summary,
      el("div", { className: "proto-body" }, [
        el("h3", { text: "请求 request" }),
        showBody(entry.request),
        el("h3", { text: "响应 response" }),
        showBody(entry.response),
      ]),
    ]);
    const errcode = entry.errcode === undefined || entry.errcode === null ? "" : entry.errcode;
    return el(
      "li",
      {
        className: "proto-entry" + (limit ? " limit" : "") + (callbackFailed(entry) ? " failed" : ""),
        "data-testid": "protocol-entry",
        "data-kind": entry.kind || "api",
        "data-api": entry.api || "",
        "data-errcode": errcode,
        "data-seq": entry.seq,
      },
      [details],
    );
  }

  function applyProtocolFilter(node) {
    const onlyLimits = ui.onlyLimits.checked;
    const hideToken = ui.hideToken.checked;
    const api = node.dataset.api || "";
    const hidden = (onlyLimits && !node.classList.contains("limit")) || (hideToken && api.endsWith("gettoken") && !node.classList.contains("limit"));
    node.hidden = hidden;
  }

  function acceptProtocol(entries) {
    const list = ui.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    entries.forEach((entry) => {
      const node = protocolNode(entry);
      applyProtocolFilter(node);
      list.appendChild(node);
      if (isLimit(entry)) state.limits += 1;
    });
    while (list.children.length > MAX_PROTOCOL_ENTRIES) list.removeChild(list.firstChild);
    ui.limitCount.dataset.count = String(state.limits);
    ui.limitCount.classList.toggle("has", state.limits > 0);
    setBilingual(ui.limitCount, "限制 " + state.limits, "limits");
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  async function loop() {
    for (;;) {
      try {
        const path = "protocol?since=" + state.next + "&wait=" + POLL_WAIT_SECONDS;
        const data = await request("GET", path, undefined, (POLL_WAIT_SECONDS + 15) * 1000);
        if (typeof data.next === "number") state.next = data.next;
        const items = data.items || [];
        if (items.length) {
          acceptProtocol(items);
          // The bot changes session states (service_state/trans), so keep the badge current.
          if (items.some((e) => String(e.api || "").includes("service_state"))) await hooks.onStateChange();
        }
      } catch (err) {
        await sleep(1500);
      }
    }
  }

  // elements: {list, limitCount, onlyLimits, hideToken, clear}; with: {nickname(user), onStateChange()}
  function start(elements, withHooks) {
    Object.assign(ui, elements);
    hooks = Object.assign(hooks, withHooks || {});
    const refilter = () => Array.from(ui.list.children).forEach(applyProtocolFilter);
    ui.onlyLimits.addEventListener("change", refilter);
    ui.hideToken.addEventListener("change", refilter);
    ui.clear.addEventListener("click", () => {
      ui.list.textContent = "";
    });
    loop();
  }

  return { start };
})();
