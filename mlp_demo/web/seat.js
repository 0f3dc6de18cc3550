// A student's seat in a class, kept by this browser across a reload or a phone that dropped the
// tab: the class code and a random token the server issued for that class alone. Kept in
// localStorage, and in a cookie that the server reads on a reloaded page's very first run (so
// the lesson is in force before any widget is drawn). The server says what to keep ("keep":
// the seat, or null to forget it); this reports a kept seat the server did not name, once: only
// then does the page run again (a rerun during a page's first run can cost widgets their state).

const KEY = "mlp_demo.seat";
const COOKIE = "mlp_demo_seat";
const CLASS_LIFETIME_S = 12 * 3600;  // a class closes by itself after this (limits.py)
const reported = new WeakMap();  // the component's root -> what it last reported

function stored() {
  try {
    const seat = JSON.parse(localStorage.getItem(KEY) || "null");
    if (seat && typeof seat.code === "string" && typeof seat.token === "string") {
      return { code: seat.code.slice(0, 40), token: seat.token.slice(0, 64) };
    }
  } catch (error) {
    // storage blocked (a sandboxed frame, a strict privacy mode) or a damaged entry: none kept
  }
  return null;
}

function keep(seat) {
  try {
    if (seat) localStorage.setItem(KEY, JSON.stringify(seat));
    else localStorage.removeItem(KEY);
  } catch (error) {
    // not kept: the student joins again after a reload, as before
  }
  // In a Space the page is a cross-site iframe: only a Secure, SameSite=None cookie reaches the
  // server there, partitioned to that site.
  const where = location.protocol === "https:" ? "; Secure; SameSite=None; Partitioned" : "; SameSite=Lax";
  const value = seat ? `${seat.code}.${seat.token}` : "";
  document.cookie = `${COOKIE}=${value}; path=/; max-age=${seat ? CLASS_LIFETIME_S : 0}${where}`;
}

export default function (component) {
  const { parentElement, data, setStateValue } = component;
  const told = data && "keep" in data ? data.keep || null : undefined;
  if (told !== undefined && JSON.stringify(stored()) !== JSON.stringify(told)) keep(told);
  const seat = stored();
  const text = JSON.stringify(seat);
  if (seat && text !== JSON.stringify(told) && reported.get(parentElement) !== text) {
    reported.set(parentElement, text);
    setStateValue("kept", seat);
  }
  return undefined;
}
