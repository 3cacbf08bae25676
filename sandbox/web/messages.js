// Chat bubbles of the sandbox page: text, image, voice, video, file, menu and system notices.
"use strict";

window.SandboxMessages = (function () {
  const { el, clock } = window.Sandbox;

  const FROM_LABELS = {
    customer: "我 me",
    bot: "智能客服 bot",
    servicer: "接待人员 receptionist",
    system: "系统 system",
  };

  function mediaUrl(item, wav) {
    const url = item.media_url || "";
    if (!wav || !url || /[?&]format=/.test(url)) return url;
    return url + (url.includes("?") ? "&" : "?") + "format=wav";
  }

  // Only http(s) links become clickable: a view item is whatever the app sent.
  const SAFE_URL = /^https?:\/\//i;

  // One msgmenu item (https://developer.work.weixin.qq.com/document/path/94677): click → a button
  // that sends the click back as the customer, view → a link, miniprogram / text → plain text.
  function menuItem(item, choice, onMenuClick) {
    const kind = choice && typeof choice === "object" ? choice.type : "";
    const sub = (kind && choice[kind]) || {};
    const label = String(sub.content === undefined || sub.content === null ? "" : sub.content);
    if (kind === "click") {
      return el("button", {
        type: "button",
        className: "menu-click",
        "data-testid": "menu-click",
        "data-menu-id": sub.id,
        text: label,
        onclick: () => onMenuClick && onMenuClick(item, { id: String(sub.id || ""), content: label }),
      });
    }
    if (kind === "view" && SAFE_URL.test(String(sub.url || ""))) {
      return el("a", {
        className: "menu-view",
        "data-testid": "menu-view",
        href: sub.url,
        target: "_blank",
        rel: "noopener noreferrer",
        text: label,
      });
    }
    const prefix = kind === "miniprogram" ? "[小程序 mini program] " : "";
    return el("span", { className: "menu-text", "data-testid": "menu-text", text: prefix + label });
  }

  function menuBubble(item, onMenuClick) {
    const menu = item.menu || {};
    const parts = [];
    if (menu.head_content) parts.push(el("div", { className: "menu-head", text: menu.head_content }));
    let line = null;
    (Array.isArray(menu.list) ? menu.list : []).forEach((choice) => {
      if (!line) {
        line = el("div", { className: "menu-line" });
        parts.push(line);
      }
      line.appendChild(menuItem(item, choice, onMenuClick));
      const sub = (choice && choice[choice.type]) || {};
      // A text item with no_newline 1 keeps the next item on the same line.
      if (!(choice && choice.type === "text" && Number(sub.no_newline) === 1)) line = null;
    });
    if (menu.tail_content) parts.push(el("div", { className: "menu-tail", text: menu.tail_content }));
    return el("div", { className: "bubble menu", "data-testid": "message-menu" }, parts);
  }

  function bubbleFor(item, onMenuClick) {
    const type = item.msgtype || "text";
    if (type === "msgmenu" && item.menu) return menuBubble(item, onMenuClick);
    if (type === "image" && item.media_url) {
      const img = el("img", { src: mediaUrl(item, false), alt: item.filename || "image", "data-testid": "message-image" });
      return el("div", { className: "bubble media" }, [el("a", { href: mediaUrl(item, false), target: "_blank", rel: "noopener" }, [img])]);
    }
    if (type === "voice" && item.media_url) {
      const audio = el("audio", { controls: "controls", preload: "none", src: mediaUrl(item, true), "data-testid": "message-audio" });
      return el("div", { className: "bubble media" }, [audio]);
    }
    if (type === "video" && item.media_url) {
      const video = el("video", { controls: "controls", preload: "metadata", src: mediaUrl(item, false), "data-testid": "message-video" });
      return el("div", { className: "bubble media" }, [video]);
    }
    if (type === "file" && item.media_url) {
      const name = item.filename || "file";
      const ext = (name.includes(".") ? name.split(".").pop() : "FILE").slice(0, 4).toUpperCase();
      const link = el(
        "a",
        { className: "file-card", href: mediaUrl(item, false), download: name, "data-testid": "message-file" },
        [
          el("span", { className: "file-icon", text: ext }),
          el("span", {}, [
            el("div", { className: "file-name", text: name }),
            el("div", { className: "file-hint", text: "点击下载 download" }),
          ]),
        ],
      );
      return el("div", { className: "bubble media" }, [link]);
    }
    const text = item.text || (item.filename ? "[" + type + "] " + item.filename : "[" + type + "]");
    return el("div", { className: "bubble", "data-testid": "message-text", text: text });
  }

  // onMenuClick(item, {id, content}) is called when a click item of a menu is tapped.
  function node(item, nickname, onMenuClick) {
    const from = item.from || "system";
    const attrs = {
      className: "msg from-" + from,
      "data-testid": "message",
      "data-from": from,
      "data-msgtype": item.msgtype || "text",
      "data-seq": item.seq,
      "data-menu-id": item.menu_id,
    };
    if (from === "system") {
      if (item.errcode) attrs.className += " rejected";
      return el("div", attrs, [el("div", { className: "notice", text: item.text || "[" + item.msgtype + "]" })]);
    }
    const name = from === "customer" ? nickname(item.external_userid) : from === "bot" ? "AI" : "人";
    const avatar = el("span", { className: "avatar " + from, text: name.slice(0, 2) });
    const who = el("div", { className: "who", text: FROM_LABELS[from] || from });
    const time = el("div", { className: "time", text: clock(item.time) });
    return el("div", attrs, [avatar, el("div", { className: "body" }, [who, bubbleFor(item, onMenuClick), time])]);
  }

  return { node };
})();
