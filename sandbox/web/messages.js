// Chat bubbles of the sandbox page: text, image, voice, video, file and system notices.
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

  function bubbleFor(item) {
    const type = item.msgtype || "text";
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

  function node(item, nickname) {
    const from = item.from || "system";
    const attrs = {
      className: "msg from-" + from,
      "data-testid": "message",
      "data-from": from,
      "data-msgtype": item.msgtype || "text",
      "data-seq": item.seq,
    };
    if (from === "system") {
      if (item.errcode) attrs.className += " rejected";
      return el("div", attrs, [el("div", { className: "notice", text: item.text || "[" + item.msgtype + "]" })]);
    }
    const name = from === "customer" ? nickname(item.external_userid) : from === "bot" ? "AI" : "人";
    const avatar = el("span", { className: "avatar " + from, text: name.slice(0, 2) });
    const who = el("div", { className: "who", text: FROM_LABELS[from] || from });
    const time = el("div", { className: "time", text: clock(item.time) });
    return el("div", attrs, [avatar, el("div", { className: "body" }, [who, bubbleFor(item), time])]);
  }

  return { node };
})();
