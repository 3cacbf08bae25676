// WeCom KF sandbox page: you play WeChat customers (and the receptionist), the bot answers.
// Talks only to the emulator's JSON control API under /sandbox/api/. Message text is always put
// into the page with textContent (never innerHTML), so whatever a customer or the bot writes stays text.
"use strict";

(function () {
  const { sessionLabel, onConnection, $, el, setBilingual, request, sleep } = window.Sandbox;
  const POLL_WAIT_SECONDS = 20;
  const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 15) * 1000; // a long-poll with no answer by then failed
  // The takeover notice (sandbox/emulator/feed.py): a session a receptionist took was live.
  const TAKEOVER_NOTICE = /接管了会话/;
  const MAX_FEED_ITEMS = 3000; // bounded: the page may stay open all day
  const MAX_RECORD_MS = 60000; // WeCom voice messages are at most 60 s

  const ui = {};
  const app = {
    accounts: [],
    customers: [],
    states: {},
    live: {}, // pairKey → true once the session was seen in a state other than 4 (so 4 now means ended)
    kf: "",
    user: "",
    feed: [],
    feedNext: 0,
    unread: {},
    lastText: {},
    recorder: null,
  };

  // ---------- helpers ----------
  let toastTimer = null;
  function toast(message, isError) {
    ui.toast.textContent = message;
    ui.toast.classList.toggle("error", Boolean(isError));
    ui.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      ui.toast.hidden = true;
    }, isError ? 6000 : 2500);
  }

  async function action(fn) {
    try {
      return await fn();
    } catch (err) {
      toast("操作失败 failed: " + err.message, true);
      return null;
    }
  }

  function pairKey(kf, user) {
    return kf + "|" + user;
  }

  function nickname(user) {
    const c = app.customers.find((x) => x.external_userid === user);
    return c ? c.nickname || user : user;
  }

  function accountName(kf) {
    const a = app.accounts.find((x) => x.open_kfid === kf);
    return a ? a.name || kf : kf;
  }

  function currentState() {
    const value = app.states[pairKey(app.kf, app.user)];
    return value === undefined || value === null ? null : Number(value);
  }

  // State 4 is "ended" and "not started" alike (WeCom's table): it reads "ended" only once the session was
  // live — seen in another state, or the feed shows the customer or a receptionist writing, or a takeover.
  function sessionStarted(kf, user) {
    const key = pairKey(kf, user);
    if (app.live[key]) return true;
    return app.feed.some(
      (it) =>
        it.open_kfid === kf &&
        it.external_userid === user &&
        (it.from === "customer" || it.from === "servicer" || (it.from === "system" && TAKEOVER_NOTICE.test(it.text || ""))),
    );
  }

  // online: the emulator answered the last request; offline: it did not (retrying); connecting: not yet known.
  function setConn(stateName) {
    if (ui.conn.dataset.state === stateName) return;
    ui.conn.dataset.state = stateName;
    const labels = {
      online: ["已连接", "online"],
      offline: ["已断开，重连中", "offline, retrying"],
      connecting: ["连接中", "connecting"],
    };
    setBilingual(ui.conn, labels[stateName][0], labels[stateName][1]);
  }

  // ---------- state: accounts, customers, session states ----------
  async function refreshState() {
    const data = await request("GET", "state");
    app.accounts = data.accounts || [];
    app.customers = data.customers || [];
    app.states = data.states || {};
    Object.entries(app.states).forEach(([key, value]) => {
      if (value !== null && value !== undefined && Number(value) !== 4) app.live[key] = true;
    });
    if (!app.accounts.some((a) => a.open_kfid === app.kf)) app.kf = app.accounts.length ? app.accounts[0].open_kfid : "";
    if (!app.customers.some((c) => c.external_userid === app.user)) {
      app.user = app.customers.length ? app.customers[0].external_userid : "";
      renderMessages();
    }
    renderAccounts();
    renderCustomers();
    renderHeader();
  }

  function renderAccounts() {
    const select = ui.kfSelect;
    select.textContent = "";
    app.accounts.forEach((a) => {
      const option = el("option", { value: a.open_kfid, text: (a.name || "客服") + "  (" + a.open_kfid + ")" });
      if (a.open_kfid === app.kf) option.selected = true;
      select.appendChild(option);
    });
  }

  function renderCustomers() {
    const list = ui.customerList;
    list.textContent = "";
    app.customers.forEach((c) => {
      const key = pairKey(app.kf, c.external_userid);
      const name = c.nickname || c.external_userid;
      const unread = app.unread[key] || 0;
      const item = el(
        "li",
        {
          className: "customer-item" + (c.external_userid === app.user ? " selected" : ""),
          "data-testid": "customer-item",
          "data-userid": c.external_userid,
          onclick: () => selectCustomer(c.external_userid),
        },
        [
          el("span", { className: "avatar", text: name.slice(0, 1) }),
          el("div", { className: "meta" }, [
            el("div", { className: "name", text: name }),
            el("div", { className: "preview", text: app.lastText[key] || c.external_userid }),
          ]),
          unread ? el("span", { className: "unread", "data-testid": "unread", text: unread }) : null,
        ],
      );
      list.appendChild(item);
    });
  }

  function renderHeader() {
    ui.chatTitle.textContent = "";
    ui.chatSub.textContent = "";
    const has = Boolean(app.kf && app.user);
    if (!has) {
      setBilingual(ui.chatTitle, "请选择客户", "pick a customer");
    } else {
      ui.chatTitle.textContent = nickname(app.user);
      ui.chatSub.textContent = "客服 KF: " + accountName(app.kf) + " · " + app.user;
    }
    const state = currentState();
    const started = state !== null && sessionStarted(app.kf, app.user);
    ui.sessionState.dataset.state = state === null ? "" : String(state);
    ui.sessionState.dataset.started = started ? "1" : "0";
    ui.sessionState.textContent = "";
    if (state !== null) {
      const [zh, en] = sessionLabel(state, started);
      setBilingual(ui.sessionState, "会话：" + zh, "session: " + en);
    }
    [ui.enter, ui.send, ui.servicerSend, ui.takeover, ui.handback].forEach((b) => {
      b.disabled = !has;
    });
    if (has) {
      ui.takeover.disabled = state === 3;
      ui.handback.disabled = state !== 3;
    }
  }

  function selectCustomer(user) {
    app.user = user;
    app.unread[pairKey(app.kf, user)] = 0;
    renderCustomers();
    const selected = ui.customerList.querySelector(".customer-item.selected");
    if (selected) selected.scrollIntoView({ block: "nearest" });
    renderHeader();
    renderMessages();
    ui.input.focus();
  }

  // ---------- the conversation ----------
  function renderMessages() {
    const box = ui.messages;
    box.textContent = "";
    const items = app.feed.filter((it) => it.open_kfid === app.kf && it.external_userid === app.user);
    if (!items.length) {
      box.appendChild(
        el("div", { className: "empty-chat", "data-testid": "empty-chat" }, [
          el("div", { text: "点「进入会话」收到欢迎语，或直接发消息。" }),
          el("div", { className: "en", text: "Click “Enter session” for the welcome message, or just send a message." }),
        ]),
      );
      return;
    }
    items.forEach((it) => box.appendChild(window.SandboxMessages.node(it, nickname, clickMenu)));
    box.scrollTop = box.scrollHeight;
  }

  function previewOf(item) {
    if (item.text) return item.text.slice(0, 40);
    return "[" + (item.msgtype || "msg") + "]";
  }

  function acceptFeed(items) {
    let touchedCurrent = false;
    items.forEach((item) => {
      app.feed.push(item);
      const key = pairKey(item.open_kfid, item.external_userid);
      app.lastText[key] = previewOf(item);
      const isCurrent = item.open_kfid === app.kf && item.external_userid === app.user;
      if (isCurrent) {
        if (!touchedCurrent && !ui.messages.querySelector(".msg")) ui.messages.textContent = "";
        ui.messages.appendChild(window.SandboxMessages.node(item, nickname, clickMenu));
        touchedCurrent = true;
      } else if (item.from !== "customer") {
        app.unread[key] = (app.unread[key] || 0) + 1;
      }
    });
    if (app.feed.length > MAX_FEED_ITEMS) app.feed.splice(0, app.feed.length - MAX_FEED_ITEMS);
    if (touchedCurrent) ui.messages.scrollTop = ui.messages.scrollHeight;
    renderCustomers();
  }

  async function feedLoop() {
    for (;;) {
      try {
        const path = "feed?since=" + app.feedNext + "&wait=" + POLL_WAIT_SECONDS;
        const data = await request("GET", path, undefined, POLL_TIMEOUT_MS);
        const items = data.items || [];
        if (typeof data.next === "number") app.feedNext = data.next;
        if (items.length) {
          acceptFeed(items);
          await refreshState();
        }
      } catch (err) {
        // request() has marked the page offline (no answer); the next answer marks it online again.
        await sleep(1500);
      }
    }
  }

  // ---------- actions ----------
  function pair() {
    return { open_kfid: app.kf, external_userid: app.user };
  }

  async function sendText(evt) {
    evt.preventDefault();
    const text = ui.input.value;
    if (!text.trim() || !app.kf || !app.user) return;
    const ok = await action(() => request("POST", "send", Object.assign(pair(), { text: text })));
    if (ok) ui.input.value = "";
  }

  // A tap on a menu's click item: the customer's text with menu_id (shows in the chat via the feed).
  async function clickMenu(item, choice) {
    const body = {
      open_kfid: item.open_kfid,
      external_userid: item.external_userid,
      menu_id: choice.id,
      content: choice.content,
    };
    await action(() => request("POST", "click", body));
  }

  async function upload(kind, file, filename) {
    if (!file || !app.kf || !app.user) return;
    const form = new FormData();
    form.append("open_kfid", app.kf);
    form.append("external_userid", app.user);
    form.append("kind", kind);
    form.append("file", file, filename || file.name || kind);
    // Success shows in the chat itself; only failures need a toast.
    await action(() => request("POST", "upload", form));
  }

  function bindUpload(input, kind) {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      await upload(kind, file);
      input.value = "";
    });
  }

  async function enterSession() {
    const data = await action(() => request("POST", "enter", pair()));
    // No welcome_code: WeCom would not allow a welcome now (one was sent, or the customer wrote, in 48 h).
    if (data && !data.welcome_code) toast("已进入会话；48 小时内不再发欢迎语 entered; no welcome within 48 h");
  }

  async function takeOver() {
    const ok = await action(() => request("POST", "takeover", pair()));
    if (ok) {
      toast("已接管：机器人将保持沉默 taken over: the bot stays silent");
      await refreshState();
    }
  }

  async function handBack() {
    const ok = await action(() => request("POST", "handback", pair()));
    if (ok) {
      toast("已交还：下一条消息由机器人回复 handed back: the bot answers the next message");
      await refreshState();
    }
  }

  async function servicerSend(evt) {
    evt.preventDefault();
    const text = ui.servicerInput.value;
    if (!text.trim() || !app.kf || !app.user) return;
    const ok = await action(() => request("POST", "servicer_send", Object.assign(pair(), { text: text })));
    if (ok) ui.servicerInput.value = "";
  }

  async function addAccount(evt) {
    evt.preventDefault();
    const name = ui.kfAddName.value.trim();
    if (!name) return;
    const data = await action(() => request("POST", "accounts", { name: name }));
    if (data && data.open_kfid) {
      ui.kfAddName.value = "";
      app.kf = data.open_kfid;
      await refreshState();
      renderMessages();
    }
  }

  async function addCustomer(evt) {
    evt.preventDefault();
    const name = ui.customerAddName.value.trim();
    if (!name) return;
    const data = await action(() => request("POST", "customers", { nickname: name }));
    if (data && data.external_userid) {
      ui.customerAddName.value = "";
      await refreshState();
      selectCustomer(data.external_userid);
    }
  }

  // Voice recording needs a microphone and a secure origin (127.0.0.1 is one); otherwise the
  // button stays hidden and an audio file can still be uploaded.
  function setupRecorder() {
    if (!window.MediaRecorder || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
    ui.record.hidden = false;
    ui.record.addEventListener("click", async () => {
      if (app.recorder) {
        app.recorder.stop();
        return;
      }
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (err) {
        toast("无法使用麦克风 no microphone: " + err.message, true);
        return;
      }
      const chunks = [];
      const recorder = new MediaRecorder(stream);
      app.recorder = recorder;
      ui.record.classList.add("recording");
      const limit = setTimeout(() => recorder.state !== "inactive" && recorder.stop(), MAX_RECORD_MS);
      recorder.addEventListener("dataavailable", (e) => e.data && e.data.size && chunks.push(e.data));
      recorder.addEventListener("stop", async () => {
        clearTimeout(limit);
        stream.getTracks().forEach((t) => t.stop());
        app.recorder = null;
        ui.record.classList.remove("recording");
        const type = recorder.mimeType || "audio/webm";
        const ext = type.includes("ogg") ? "ogg" : "webm";
        await upload("voice", new Blob(chunks, { type: type }), "recording." + ext);
      });
      recorder.start();
    });
  }

  // On narrow screens the protocol log sits below the chat, collapsed until opened; wider, it is a column.
  function setupProtocolToggle() {
    const pane = $("protocol");
    const toggle = $("protocol-toggle");
    const narrow = window.matchMedia ? window.matchMedia("(max-width: 899px)") : null;
    function show(open) {
      pane.classList.toggle("collapsed", !open);
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      setBilingual(toggle, open ? "收起" : "展开", open ? "hide" : "show");
    }
    show(!(narrow && narrow.matches));
    toggle.addEventListener("click", () => show(pane.classList.contains("collapsed")));
    if (narrow && narrow.addEventListener) narrow.addEventListener("change", (e) => show(!e.matches));
  }

  async function ensureCustomer() {
    if (app.customers.length) return;
    const data = await request("POST", "customers", { nickname: "微信用户" });
    await refreshState();
    if (data.external_userid) selectCustomer(data.external_userid);
  }

  async function init() {
    Object.assign(ui, {
      conn: $("conn-status"),
      kfSelect: $("kf-select"),
      kfAddName: $("kf-add-name"),
      customerList: $("customer-list"),
      customerAddName: $("customer-add-name"),
      chatTitle: $("chat-title"),
      chatSub: $("chat-sub"),
      sessionState: $("session-state"),
      enter: $("enter-session"),
      messages: $("messages"),
      input: $("message-input"),
      send: $("send-button"),
      takeover: $("takeover"),
      handback: $("handback"),
      servicerInput: $("servicer-input"),
      servicerSend: $("servicer-send"),
      record: $("record-voice"),
      toast: $("toast"),
    });
    $("send-form").addEventListener("submit", sendText);
    ui.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) sendText(e);
    });
    $("servicer-form").addEventListener("submit", servicerSend);
    $("kf-add-form").addEventListener("submit", addAccount);
    $("customer-add-form").addEventListener("submit", addCustomer);
    ui.enter.addEventListener("click", enterSession);
    ui.takeover.addEventListener("click", takeOver);
    ui.handback.addEventListener("click", handBack);
    ui.kfSelect.addEventListener("change", () => {
      app.kf = ui.kfSelect.value;
      selectCustomer(app.user);
    });
    bindUpload($("upload-image"), "image");
    bindUpload($("upload-file"), "file");
    bindUpload($("upload-voice"), "voice");
    setupRecorder();
    setupProtocolToggle();
    // Every answer from the emulator (page actions and both long-polls) turns the status to connected,
    // every failed request to disconnected; not only the first long-poll, which may wait 20 s.
    onConnection((ok) => setConn(ok ? "online" : "offline"));
    renderHeader();
    for (let attempt = 0; attempt < 20; attempt += 1) {
      try {
        await refreshState();
        await ensureCustomer();
        break;
      } catch (err) {
        await sleep(1000);
      }
    }
    renderMessages();
    document.body.dataset.ready = "1";
    feedLoop();
    window.SandboxProtocol.start(
      {
        list: $("protocol-list"),
        limitCount: $("limit-count"),
        onlyLimits: $("only-limits"),
        hideToken: $("hide-token"),
        clear: $("protocol-clear"),
      },
      { nickname: nickname, onStateChange: refreshState },
    );
  }

  document.addEventListener("DOMContentLoaded", init);
})();
