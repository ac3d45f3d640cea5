// villagehub dashboard. Plain JavaScript, no build step: live camera and
// board state over Server-Sent Events (/ui/stream), daily QR counts and
// alerts from the JSON API. Vietnamese by default, English on a toggle
// remembered in localStorage. Everything is built with DOM calls (never
// innerHTML with data), so device names cannot inject markup.
(function () {
  'use strict';

  var TEXT = {
    vi: {
      title: 'Bảng điều khiển thôn', skip: 'Bỏ qua, tới nội dung chính', nav: 'Mục',
      cameras: 'Camera', qr: 'Lượt quét mã QR', alerts: 'Cảnh báo',
      conn_connecting: 'Đang kết nối…', conn_live: 'Đang cập nhật trực tiếp',
      conn_lost: 'Mất kết nối với hub, đang thử lại…',
      st_down: 'Mất hình', st_offline: 'Mất kết nối', st_poor: 'Hình kém',
      st_fair: 'Hình tạm được', st_unknown: 'Chưa rõ', st_up: 'Hoạt động',
      for_dur: 'đã {d}', since: 'từ {t}',
      last_motion: 'Chuyển động gần nhất', motion_now: 'đang có chuyển động', none_yet: 'chưa có',
      fps: 'Khung hình/giây', bitrate: 'Tốc độ bit', reason: 'Lý do', motion_events: 'Số lần chuyển động',
      r_timeout: 'không phản hồi', r_refused: 'từ chối kết nối', r_unauthorized: 'sai tài khoản hoặc mật khẩu',
      r_not_found: 'không tìm thấy luồng video', r_no_video: 'không có hình', r_protocol: 'lỗi giao thức', r_other: 'lỗi khác',
      summary: '{n} camera: {parts}', no_cameras: 'Chưa có camera nào.',
      loading: 'Đang tải…', load_failed: 'Chưa tải được dữ liệu từ hub, đang thử lại…',
      add_camera: 'Thêm camera', ask_admin: ' Nhờ quản trị viên thêm camera.',
      login: 'Đăng nhập', logout: 'Đăng xuất', local_admin: 'Quản trị trên máy này',
      setup_needed: 'Hub chưa có quản trị viên: mở trang cài đặt lần đầu',
      h_broker: 'Hub không kết nối được với máy chủ MQTT (broker): tin từ camera và bảng QR không về được. Kiểm tra mqtt.url hoặc máy chủ MQTT.',
      h_store: 'Hub không ghi được dữ liệu vào kho lưu trữ.', h_influx: 'InfluxDB không nhận dữ liệu; số liệu đang chờ gửi.',
      h_other: 'Hub gặp sự cố: {n}', h_unreachable: 'Mất kết nối với hub; số liệu trên trang có thể đã cũ.',
      board_status: 'Tình trạng', last_report: 'Báo gần nhất', device30: 'Thiết bị đếm (30 ngày)', paper30: 'Quét mã in (30 ngày)',
      unique30: 'Người quét khác nhau (30 ngày)', device_short: 'Thiết bị đếm', paper_short: 'Quét mã in', unique_short: 'Người quét khác nhau',
      m_total: 'lượt đã đếm = thiết bị đếm + quét mã in; bot không tính.',
      m_device: 'bảng tự đếm lượt quét và gửi về qua MQTT; không biết ai quét.',
      m_paper: 'điện thoại quét mã QR in trên giấy, đếm tại hub.',
      m_unique: 'lượt quét mã in từ điện thoại chưa quét bảng này gần đây; “—” khi bảng chỉ có thiết bị đếm.',
      m_status: 'thiết bị của bảng đang nối với hub qua MQTT hay đã mất kết nối.',
      bs_online: 'Hoạt động', bs_offline: 'Mất kết nối', bs_unknown: 'Chưa rõ', not_approved: 'chưa duyệt',
      battery: 'Pin', rssi: 'Sóng', battery_low: 'pin yếu', reported_at: 'báo lúc {t}',
      m_battery: 'mức pin thiết bị của bảng tự báo về; dưới 20% là pin yếu, cần sạc hoặc thay pin.',
      m_rssi: 'cường độ sóng Wi-Fi thiết bị của bảng nhận được, đơn vị dBm: càng gần 0 càng mạnh, dưới -80 là yếu.',
      alerts_error: 'Không tải được cảnh báo từ hub, đang thử lại…', silence_login: 'Đăng nhập quản trị để tạm tắt cảnh báo.',
      reports: 'Báo cáo', month_report: 'Báo cáo lượt quét QR theo tháng', month: 'Tháng', download_pdf: 'Tải PDF',
      download_csv_excel: 'Tải CSV (mở bằng Excel)', qr_sheets: 'Tờ mã QR để in (mỗi thôn một tệp PDF)', sheet_for: 'Mã QR của {s} ({n} bảng)',
      no_sheets: 'Chưa có bảng mã QR nào để in.',
      admin: 'Quản trị', admin_readonly: 'Hub này không chạy từ tệp cấu hình nên không thêm, đổi tên thiết bị ở đây được.',
      add_device: 'Thêm camera hoặc bảng mã QR', kind: 'Loại', kind_camera: 'Camera', kind_board: 'Bảng mã QR',
      dev_id: 'Mã (chữ thường không dấu)', dev_name: 'Tên', dev_url: 'Địa chỉ RTSP (camera) hoặc trang đích (bảng)', add: 'Thêm',
      no_devices: 'Chưa có thiết bị nào.', devices: 'Thiết bị', approval: 'Duyệt', actions: 'Việc', approved: 'đã duyệt', auto_registered: 'tự đăng ký, chưa duyệt',
      rename: 'Đổi tên', approve: 'Duyệt', reject: 'Từ chối', saved: 'Đã lưu vào tệp cấu hình.', save_failed: 'Không lưu được: {e}',
      reject_confirm: 'Từ chối {d}? Hub sẽ quên thiết bị này và không cho nó tự đăng ký lại.', rejected: 'Đã từ chối {d}; hub đã quên thiết bị này.',
      reject_failed: 'Không từ chối được: {e}',
      saved_restart: 'Đã lưu vào tệp cấu hình; hub sẽ áp dụng khi khởi động lại.',
      new_name: 'Tên mới của {d}', save: 'Lưu', cancel: 'Hủy',
      notifiers: 'Kênh gửi thông báo', no_notifiers: 'Hub này chưa cấu hình kênh gửi thông báo.', test_send: 'Gửi thử',
      find_cams: 'Tìm camera', find_cams_note: 'Tìm camera ONVIF trong mạng của hub, hoặc đọc một camera ở mạng khác theo địa chỉ ONVIF. Mật khẩu camera được cất trong tệp riêng trên hub, không hiện lại.',
      cam_user: 'Tên đăng nhập camera', cam_pass: 'Mật khẩu camera', onvif_url: 'Địa chỉ ONVIF (camera ở mạng khác, không bắt buộc)',
      find_lan: 'Tìm trong mạng', read_url: 'Đọc theo địa chỉ', choose: 'Chọn', make_model: 'Hãng, kiểu', onvif_addr: 'Địa chỉ ONVIF',
      main_stream: 'Luồng chính', note: 'Ghi chú', add_chosen: 'Thêm camera đã chọn', searching: 'Đang tìm…', reading: 'Đang đọc camera…',
      found_n: 'Tìm thấy {n} camera.', found_none: 'Không thấy camera nào trả lời. Camera ở mạng khác: nhập địa chỉ ONVIF rồi bấm “Đọc theo địa chỉ”.',
      need_url: 'Nhập địa chỉ ONVIF của camera.', cam_unauthorized: 'sai tên đăng nhập hoặc mật khẩu', cam_known: 'đã có trong cấu hình',
      cam_ok: 'đọc được', clock_off: 'đồng hồ camera lệch {d}', added_cams: 'Đã thêm {n} camera: {ids}. Hub đã nạp lại cấu hình.', added_cams_restart: 'Đã thêm {n} camera vào tệp cấu hình: {ids}. Hub sẽ theo dõi camera mới khi khởi động lại (tệp cấu hình còn thay đổi khác cần khởi động lại).', adding: 'Đang thêm…',
      cams_unchanged: 'Các camera đã chọn đã có trong cấu hình.', find_failed: 'Không làm được: {e}',
      sending: 'Đang gửi…', test_ok: 'Kênh đã nhận tin thử.', test_failed: 'Kênh từ chối tin thử.', channel_answer: 'Kênh trả lời',
      healthy: 'hoạt động', unhealthy: 'đang lỗi',
      u_day: 'ngày', u_hour: 'giờ', u_min: 'phút', u_sec: 'giây',
      qr_caption: 'Lượt quét theo bảng (hôm nay, 7 ngày và 30 ngày gần đây)',
      board: 'Bảng', site: 'Thôn, bản', today: 'Hôm nay', days7: '7 ngày', days30: '30 ngày',
      chart_for: 'Biểu đồ của bảng', csv: 'Tải CSV (30 ngày)', data_table: 'Bảng số liệu theo ngày',
      day: 'Ngày', scans: 'Lượt quét', chart_title: 'Lượt quét mỗi ngày, 30 ngày gần đây: {b}',
      series_unavailable: 'Chưa lấy được số liệu theo ngày từ hub.', no_boards: 'Chưa có bảng mã QR nào.',
      alerts_unavailable: 'Hub này chưa bật cảnh báo.', firing: 'Đang báo', history: 'Gần đây',
      silences: 'Tạm tắt cảnh báo', device: 'Thiết bị', alert_kind: 'Loại cảnh báo', all_alerts: 'Mọi cảnh báo',
      silence_for: 'Trong', h1: '1 giờ', h4: '4 giờ', d1: '1 ngày', d7: '7 ngày', comment: 'Ghi chú',
      silence_add: 'Tạm tắt', silence_remove: 'Bỏ tạm tắt', silenced: 'đang tạm tắt', until: 'đến {t}',
      no_firing: 'Không có cảnh báo nào đang báo.', no_history: 'Chưa có cảnh báo nào gần đây.',
      no_silences: 'Không có cảnh báo nào đang tạm tắt.', resolved: 'đã hết', firing_state: 'đang báo',
      silence_failed: 'Không tạm tắt được: {e}',
      a_CameraDown: 'Camera mất hình', a_CameraDown_offline: 'Camera mất kết nối', a_CameraDegraded: 'Camera hình kém', a_QRBoardSilent: 'Bảng QR không gửi dữ liệu',
      a_QRBoardSilent_offline: 'Bảng QR mất kết nối',
      a_HubDegraded: 'Hub gặp sự cố', a_FrigateDown: 'Frigate mất kết nối',
      r_offline: 'mất kết nối', r_low_fps: 'số khung hình thấp', r_low_bitrate: 'bitrate thấp', r_poor_grade: 'chất lượng kém',
      r_silent: 'không gửi báo cáo', r_flapping: 'chập chờn', r_disconnected: 'mất kết nối MQTT broker',
      r_queue_saturated: 'hàng đợi gần đầy', r_spool_not_draining: 'dữ liệu chờ ghi InfluxDB ùn ứ', r_probes_unavailable: 'không kiểm tra được hình camera (tiến trình kiểm tra không chạy)', r_uplink_backlog: 'dữ liệu chờ gửi lên trung tâm ùn ứ', r_removed: 'thiết bị đã bị gỡ'
    },
    en: {
      title: 'Village dashboard', skip: 'Skip to main content', nav: 'Sections',
      cameras: 'Cameras', qr: 'QR code scans', alerts: 'Alerts',
      conn_connecting: 'Connecting…', conn_live: 'Live', conn_lost: 'Lost the hub, retrying…',
      st_down: 'No picture', st_offline: 'Disconnected', st_poor: 'Poor picture', st_fair: 'Fair picture',
      st_unknown: 'Unknown', st_up: 'Up',
      for_dur: 'for {d}', since: 'since {t}',
      last_motion: 'Last motion', motion_now: 'motion now', none_yet: 'none yet',
      fps: 'Frames/s', bitrate: 'Bitrate', reason: 'Reason', motion_events: 'Motion events',
      r_timeout: 'no answer', r_refused: 'connection refused', r_unauthorized: 'wrong user or password',
      r_not_found: 'stream not found', r_no_video: 'no video', r_protocol: 'protocol error', r_other: 'other error',
      summary: '{n} cameras: {parts}', no_cameras: 'No cameras yet.',
      loading: 'Loading…', load_failed: 'Could not load data from the hub yet, retrying…',
      add_camera: 'Add a camera', ask_admin: ' Ask an administrator to add one.',
      login: 'Log in', logout: 'Log out', local_admin: 'Admin on this machine',
      setup_needed: 'This hub has no administrator yet: open first-run setup',
      h_broker: 'The hub cannot reach the MQTT broker: messages from cameras and QR boards are not arriving. Check mqtt.url or the broker.',
      h_store: 'The hub cannot write to its store.', h_influx: 'InfluxDB is not accepting data; points are waiting.',
      h_other: 'The hub has a problem: {n}', h_unreachable: 'Lost the hub; figures on this page may be stale.',
      board_status: 'Status', last_report: 'Last report', device30: 'Device-counted (30 days)', paper30: 'Printed-code scans (30 days)',
      unique30: 'Unique scanners (30 days)', device_short: 'Device-counted', paper_short: 'Printed-code scans', unique_short: 'Unique scanners',
      m_total: 'scans counted = device-counted + printed-code scans; bots excluded.',
      m_device: 'the board counts scans itself and reports them over MQTT; who scanned is unknown.',
      m_paper: 'phones scanning the printed QR code, counted by the hub.',
      m_unique: 'printed-code scans from a phone that had not just scanned this board; "—" for device-only boards.',
      m_status: 'whether the board\'s device is connected to the hub over MQTT.',
      bs_online: 'Online', bs_offline: 'Disconnected', bs_unknown: 'Unknown', not_approved: 'not approved',
      battery: 'Battery', rssi: 'Signal', battery_low: 'battery low', reported_at: 'reported {t}',
      m_battery: 'the battery level the board\'s device reports; below 20% is low: charge or replace it.',
      m_rssi: 'Wi-Fi signal strength at the board\'s device, in dBm: nearer 0 is stronger, below -80 is weak.',
      alerts_error: 'Could not load alerts from the hub, retrying…', silence_login: 'Log in as an administrator to silence alerts.',
      reports: 'Reports', month_report: 'Monthly QR scan report', month: 'Month', download_pdf: 'Download PDF',
      download_csv_excel: 'Download CSV (opens in Excel)', qr_sheets: 'Printable QR sheets (one PDF per site)', sheet_for: 'QR codes of {s} ({n} boards)',
      no_sheets: 'No QR boards to print yet.',
      admin: 'Administration', admin_readonly: 'This hub was not started from a config file: devices cannot be added or renamed here.',
      add_device: 'Add a camera or QR board', kind: 'Kind', kind_camera: 'Camera', kind_board: 'QR board',
      dev_id: 'ID (lowercase, no accents)', dev_name: 'Name', dev_url: 'RTSP URL (camera) or target page (board)', add: 'Add',
      no_devices: 'No devices yet.', devices: 'Devices', approval: 'Approval', actions: 'Actions', approved: 'approved', auto_registered: 'self-registered, not approved',
      rename: 'Rename', approve: 'Approve', reject: 'Reject', saved: 'Saved to the config file.', save_failed: 'Could not save: {e}',
      reject_confirm: 'Reject {d}? The hub forgets this device and will not let it register itself again.', rejected: 'Rejected {d}; the hub forgot it.',
      reject_failed: 'Could not reject: {e}',
      saved_restart: 'Saved to the config file; the hub applies it at its next start.',
      new_name: 'New name for {d}', save: 'Save', cancel: 'Cancel',
      notifiers: 'Notification channels', no_notifiers: 'No notification channels configured.', test_send: 'Send a test',
      find_cams: 'Find cameras', find_cams_note: 'Find ONVIF cameras on the hub\'s network, or read a camera on another network by its ONVIF URL. The camera password is kept in its own file on the hub and never shown again.',
      cam_user: 'Camera username', cam_pass: 'Camera password', onvif_url: 'ONVIF URL (camera on another network, optional)',
      find_lan: 'Search the network', read_url: 'Read by URL', choose: 'Choose', make_model: 'Make, model', onvif_addr: 'ONVIF URL',
      main_stream: 'Main stream', note: 'Note', add_chosen: 'Add the chosen cameras', searching: 'Searching…', reading: 'Reading the camera…',
      found_n: '{n} camera(s) found.', found_none: 'No camera answered. For a camera on another network, enter its ONVIF URL and press “Read by URL”.',
      need_url: 'Enter the camera\'s ONVIF URL.', cam_unauthorized: 'wrong username or password', cam_known: 'already in the config',
      cam_ok: 'read', clock_off: 'camera clock off by {d}', added_cams: 'Added {n} camera(s): {ids}. The hub reloaded its config.', added_cams_restart: 'Added {n} camera(s) to the config file: {ids}. The hub watches them after its next restart (another change in the config file needs a restart).', adding: 'Adding…',
      cams_unchanged: 'The chosen cameras are already in the config.', find_failed: 'Could not do it: {e}',
      sending: 'Sending…', test_ok: 'The channel accepted the test.', test_failed: 'The channel refused the test.', channel_answer: 'Channel\'s answer',
      healthy: 'healthy', unhealthy: 'failing',
      u_day: 'd', u_hour: 'h', u_min: 'min', u_sec: 's',
      qr_caption: 'Scans per board (today, last 7 and 30 days)',
      board: 'Board', site: 'Site', today: 'Today', days7: '7 days', days30: '30 days',
      chart_for: 'Chart for board', csv: 'Download CSV (30 days)', data_table: 'Daily figures',
      day: 'Day', scans: 'Scans', chart_title: 'Scans per day, last 30 days: {b}',
      series_unavailable: 'Could not get daily figures from the hub.', no_boards: 'No QR boards yet.',
      alerts_unavailable: 'Alerting is not enabled on this hub.', firing: 'Firing', history: 'Recent',
      silences: 'Silences', device: 'Device', alert_kind: 'Alert', all_alerts: 'All alerts',
      silence_for: 'For', h1: '1 hour', h4: '4 hours', d1: '1 day', d7: '7 days', comment: 'Comment',
      silence_add: 'Silence', silence_remove: 'Remove silence', silenced: 'silenced', until: 'until {t}',
      no_firing: 'No alerts firing.', no_history: 'No recent alerts.', no_silences: 'No silences.',
      resolved: 'resolved', firing_state: 'firing', silence_failed: 'Could not silence: {e}',
      a_CameraDown: 'Camera has no picture', a_CameraDown_offline: 'Camera disconnected', a_CameraDegraded: 'Camera picture poor', a_QRBoardSilent: 'QR board silent',
      a_QRBoardSilent_offline: 'QR board disconnected',
      a_HubDegraded: 'Hub degraded', a_FrigateDown: 'Frigate offline',
      r_offline: 'disconnected', r_low_fps: 'low frame rate', r_low_bitrate: 'low bitrate', r_poor_grade: 'poor quality',
      r_silent: 'no reports', r_flapping: 'flapping', r_disconnected: 'MQTT broker disconnected',
      r_queue_saturated: 'ingest queue saturated', r_spool_not_draining: 'InfluxDB spool not draining', r_probes_unavailable: 'camera probing unavailable (probe worker cannot start)', r_uplink_backlog: 'uplink backlog (metrics not reaching the centre)', r_removed: 'device removed'
    }
  };
  var LOCALE = { vi: 'vi-VN', en: 'en-GB' };
  var STATES = ['down', 'offline', 'poor', 'fair', 'unknown', 'up'];
  var LANG_KEY = 'villagehub.lang';

  var tzMeta = document.querySelector('meta[name="villagehub-tz"]');
  var TZ = (tzMeta && tzMeta.content) || undefined;

  var S = {
    lang: 'vi',
    cams: new Map(), boards: new Map(), sites: new Map(),
    offset: 0,          // hub clock minus this clock, ms
    days: null,         // village day boundaries from the hub
    series: new Map(),  // board key -> [{time, total}]
    seriesFailed: false,
    selected: null,     // board key of the chart, once the user picked one
    alerts: null, silences: null, alertsAvailable: true, alertsState: 'loading',
    chart: null,
    loaded: false,      // the first full snapshot arrived
    streamFailed: false,
    problems: [],       // failing readiness checks
    admin: null,        // /api/v1/admin/info
    editing: null       // the device row being renamed or approved
  };
  var roleMeta = document.querySelector('meta[name="villagehub-role"]');
  S.role = (roleMeta && roleMeta.content) || 'viewer';
  document.body.setAttribute('data-role', S.role);

  try {
    var saved = window.localStorage.getItem(LANG_KEY);
    if (saved === 'en' || saved === 'vi') S.lang = saved;
  } catch (e) { /* storage disabled: Vietnamese */ }

  function t(key, vars) {
    var s = TEXT[S.lang][key];
    if (s === undefined) s = TEXT.vi[key];
    if (s === undefined) return key;
    if (vars) s = s.replace(/\{(\w+)\}/g, function (_, k) { return vars[k] === undefined ? '' : vars[k]; });
    return s;
  }

  var fmtCache = {};
  function fmt(kind) {
    var k = S.lang + ':' + kind;
    if (fmtCache[k]) return fmtCache[k];
    var loc = LOCALE[S.lang], f;
    switch (kind) {
      case 'int': f = new Intl.NumberFormat(loc, { maximumFractionDigits: 0 }); break;
      case 'dec': f = new Intl.NumberFormat(loc, { maximumFractionDigits: 1 }); break;
      case 'date': f = new Intl.DateTimeFormat(loc, { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric' }); break;
      case 'dm': f = new Intl.DateTimeFormat(loc, { timeZone: TZ, day: '2-digit', month: '2-digit' }); break;
      case 'datetime': f = new Intl.DateTimeFormat(loc, { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }); break;
    }
    fmtCache[k] = f;
    return f;
  }
  function num(n) { return fmt('int').format(n); }
  function dec(n) { return fmt('dec').format(n); }
  function dateTime(s) { return fmt('datetime').format(new Date(s)); }
  function day(s) { return fmt('date').format(new Date(s)); }
  // dayMonth is "27/11" in both languages (vi-VN would print "27-11").
  function dayMonth(d) {
    var p = {};
    fmt('dm').formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    return p.day + '/' + p.month;
  }
  function hubNow() { return Date.now() + S.offset; }

  // duration shows the two largest units: "3 giờ 12 phút", "5 min 3 s".
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var parts = [[Math.floor(s / 86400), 'u_day'], [Math.floor(s / 3600) % 24, 'u_hour'], [Math.floor(s / 60) % 60, 'u_min'], [s % 60, 'u_sec']];
    var i = 0;
    while (i < parts.length - 1 && parts[i][0] === 0) i++;
    var out = [];
    for (var j = i; j < Math.min(i + 2, parts.length); j++) {
      if (j > i && parts[j][0] === 0) break;
      out.push(num(parts[j][0]) + '\u00a0' + t(parts[j][1]));
    }
    return out.join(' ');
  }

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) if (arguments[i]) e.append(arguments[i]);
    return e;
  }
  function $(id) { return document.getElementById(id); }

  // ---- static text ----------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = S.lang;
    document.title = t('title') + ' · villagehub';
    document.querySelectorAll('[data-i18n]').forEach(function (n) { n.textContent = t(n.getAttribute('data-i18n')); });
    document.querySelectorAll('[data-i18n-aria]').forEach(function (n) { n.setAttribute('aria-label', t(n.getAttribute('data-i18n-aria'))); });
    var b = $('lang');
    b.textContent = S.lang === 'vi' ? 'English' : 'Tiếng Việt';
    b.lang = S.lang === 'vi' ? 'en' : 'vi';
    setConn($('conn').getAttribute('data-state'));
    renderAll();
  }

  $('lang').addEventListener('click', function () {
    S.lang = S.lang === 'vi' ? 'en' : 'vi';
    try { window.localStorage.setItem(LANG_KEY, S.lang); } catch (e) { /* not remembered */ }
    applyLanguage();
  });

  function setConn(state) {
    var c = $('conn');
    c.setAttribute('data-state', state);
    c.textContent = t('conn_' + state);
  }

  // ---- cameras --------------------------------------------------------

  function camState(c) {
    var s = c.stream;
    if (s && !s.up) return 'down';
    if (c.status === 'offline') return 'offline';
    if (s && (s.grade === 'poor' || s.grade === 'fair')) return s.grade;
    if ((s && s.up) || c.status === 'online') return 'up';
    return 'unknown';
  }
  function camSince(c, st) {
    if (st === 'offline' || !c.stream) return c.status_since;
    return c.stream.since;
  }
  function siteName(id) { var s = S.sites.get(id); return (s && s.name) || id; }

  function camCard(c) {
    var st = camState(c);
    var key = c.site + '/' + c.id;
    var hid = 'cam-' + key.replace(/[^a-z0-9_-]/gi, '-');
    var dl = el('dl');
    function row(label, value, cls) { dl.append(el('div', { class: cls }, el('dt', { text: label }), el('dd', { text: value }))); }
    row(t('last_motion'), c.motion_active ? t('motion_now') : (c.last_motion ? dateTime(c.last_motion) : t('none_yet')));
    if (c.stream && c.stream.up) {
      row(t('fps'), dec(c.stream.fps));
      row(t('bitrate'), dec(c.stream.bitrate_bps / 1000) + '\u00a0kbit/s');
    }
    if (c.stream && !c.stream.up && c.stream.reason) row(t('reason'), t('r_' + c.stream.reason), 'reason');
    var since = camSince(c, st);
    var li = el('li', { class: 'cam st-' + st, 'data-key': key, 'data-state': st },
      el('article', { 'aria-labelledby': hid },
        el('h3', { id: hid, text: c.name || c.id }, c.configured === false ? el('span', { class: 'auto', text: t('not_approved') }) : null),
        el('p', { class: 'site', text: siteName(c.site) + (c.location ? ' · ' + c.location : '') }),
        el('p', { class: 'status' },
          el('span', { class: 'badge', text: t('st_' + st) }),
          since ? el('span', { class: 'since', 'data-since': since, title: t('since', { t: dateTime(since) }) }) : null),
        dl));
    updateSince(li);
    return li;
  }
  function updateSince(root) {
    root.querySelectorAll('.since').forEach(function (n) {
      var txt = t('for_dur', { d: duration(hubNow() - Date.parse(n.getAttribute('data-since'))) });
      if (n.textContent !== txt) n.textContent = txt;
    });
  }

  var cardNodes = new Map();
  function renderCameras(changed) {
    var grid = $('cam-grid');
    var keys = changed || Array.from(S.cams.keys());
    keys.forEach(function (k) {
      var c = S.cams.get(k), old = cardNodes.get(k);
      if (!c) { if (old) old.remove(); cardNodes.delete(k); return; }
      var n = camCard(c);
      if (old) old.replaceWith(n);
      cardNodes.set(k, n);
    });
    var order = Array.from(S.cams.values()).map(function (c) { return { c: c, r: STATES.indexOf(camState(c)) }; });
    order.sort(function (a, b) {
      return a.r - b.r || (a.c.site < b.c.site ? -1 : a.c.site > b.c.site ? 1 : 0) ||
        (a.c.name || a.c.id).localeCompare(b.c.name || b.c.id, LOCALE[S.lang]);
    });
    var counts = {};
    order.forEach(function (o, i) {
      var n = cardNodes.get(o.c.site + '/' + o.c.id);
      if (grid.children[i] !== n) grid.insertBefore(n, grid.children[i] || null);
      var st = STATES[o.r];
      counts[st] = (counts[st] || 0) + 1;
    });
    var parts = STATES.filter(function (s) { return counts[s]; }).map(function (s) { return num(counts[s]) + ' ' + t('st_' + s).toLowerCase(); });
    // Three different things: still loading (skeleton), could not load
    // (error, skeleton stays), loaded and truly empty (empty state).
    var summary = $('cam-summary');
    if (!S.loaded) {
      summary.textContent = S.streamFailed ? t('load_failed') : t('loading');
      summary.className = S.streamFailed ? 'error' : '';
      $('cam-empty').hidden = true;
      return;
    }
    grid.removeAttribute('aria-busy');
    grid.querySelectorAll('.skeleton').forEach(function (n) { n.remove(); });
    summary.className = '';
    summary.textContent = order.length ? t('summary', { n: num(order.length), parts: parts.join(', ') }) : '';
    summary.hidden = !order.length;
    $('cam-empty').hidden = order.length > 0;
  }

  // ---- QR boards ------------------------------------------------------

  function boardKey(b) { return b.site + '/' + b.id; }
  function boardSums(key) {
    var b = S.boards.get(key), pts = S.series.get(key);
    var out = { today: b ? b.scans_today : 0, d7: null, d30: null, mqtt: null, printed: null, unique: null };
    if (!pts || !S.days) return out;
    var today = Date.parse(S.days.today), from7 = Date.parse(S.days.from7);
    out.d7 = out.today; out.d30 = out.today; out.mqtt = 0; out.printed = 0; out.unique = 0;
    pts.forEach(function (p) {
      var tm = Date.parse(p.time);
      // The split by source comes from the history, today included.
      out.mqtt += p.mqtt || 0; out.printed += p.printed || 0; out.unique += p.unique || 0;
      if (tm >= today) return; // today's total comes live from the stream
      out.d30 += p.total;
      if (tm >= from7) out.d7 += p.total;
    });
    return out;
  }
  function boardStatus(b) { return b.status === 'online' || b.status === 'offline' ? b.status : 'unknown'; }

  function renderBoards() {
    var body = $('qr-table').tBodies[0];
    var rows = [];
    var list = Array.from(S.boards.values()).sort(function (a, b) {
      return (a.site < b.site ? -1 : a.site > b.site ? 1 : 0) || (a.name || a.id).localeCompare(b.name || b.id, LOCALE[S.lang]);
    });
    function cell(label, text, cls) { return el('td', { class: cls, 'data-label': t(label), text: text }); }
    var anyBattery = false, anyRSSI = false;
    list.forEach(function (b) {
      var s = boardSums(boardKey(b)), bs = boardStatus(b);
      var st = el('td', { class: 'bstatus', 'data-label': t('board_status') },
        el('span', { class: 'bst bst-' + bs, text: t('bs_' + bs) }));
      // Battery and signal only when the board's device sends them; a
      // reading more than a day old says when it was sent, so an old
      // "Pin 87%" is not read as today's.
      var health = el('span', { class: 'health' });
      function when(at) {
        var ms = at ? Date.parse(at) : NaN;
        return ms < Date.now() + S.offset - 86400000 ? ' (' + t('reported_at', { t: dateTime(at) }) + ')' : '';
      }
      if (typeof b.battery === 'number') {
        var low = b.battery < 20;
        health.append(el('span', { class: low ? 'batt low' : 'batt', 'data-low': String(low), title: b.battery_at ? t('reported_at', { t: dateTime(b.battery_at) }) : null,
          text: t('battery') + ' ' + num(b.battery) + '%' + (low ? ' (' + t('battery_low') + ')' : '') + when(b.battery_at) }));
        anyBattery = true;
      }
      if (typeof b.rssi === 'number') {
        if (health.childNodes.length) health.append(' · ');
        health.append(el('span', { class: 'rssi', title: b.rssi_at ? t('reported_at', { t: dateTime(b.rssi_at) }) : null,
          text: t('rssi') + ' ' + num(b.rssi) + '\u00a0dBm' + when(b.rssi_at) }));
        anyRSSI = true;
      }
      if (health.childNodes.length) st.append(' ', health);
      var uniq = s.unique === null ? '…' : (s.printed ? num(s.unique) : '—');
      rows.push(el('tr', { 'data-key': boardKey(b), 'data-status': bs },
        el('th', { scope: 'row' }, b.name || b.id, b.configured === false ? el('span', { class: 'auto', text: t('not_approved') }) : null),
        cell('site', siteName(b.site)),
        st,
        cell('last_report', b.last_report ? dateTime(b.last_report) : t('none_yet'), 'last'),
        cell('today', num(s.today), 'num today'),
        cell('days7', s.d7 === null ? '…' : num(s.d7), 'num'),
        cell('days30', s.d30 === null ? '…' : num(s.d30), 'num'),
        cell('device30', s.mqtt === null ? '…' : num(s.mqtt), 'num mqtt'),
        cell('paper30', s.printed === null ? '…' : num(s.printed), 'num printed'),
        cell('unique30', uniq, 'num unique')));
    });
    if (!S.loaded) {
      if (S.streamFailed) rows = [el('tr', null, el('td', { colspan: '10', class: 'error', text: t('load_failed') }))];
      else return; // the skeleton rows stay
    } else if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: '10', text: t('no_boards') })));
    body.replaceChildren.apply(body, rows);
    // The meaning of battery and signal only where some board shows them.
    $('legend-battery').hidden = !anyBattery;
    $('legend-rssi').hidden = !anyRSSI;
    // No chart, picker or CSV for a hub without boards.
    $('qr').classList.toggle('no-boards', S.loaded && !list.length);

    var sel = $('qr-board');
    var current = S.selected || defaultBoard(list);
    sel.replaceChildren.apply(sel, list.map(function (b) {
      var o = el('option', { value: boardKey(b), text: (b.name || b.id) + ' · ' + siteName(b.site) });
      if (boardKey(b) === current) o.selected = true;
      return o;
    }));
    var note = $('qr-note');
    note.hidden = !S.seriesFailed;
    note.textContent = t('series_unavailable');
    renderChart(current);
  }

  function defaultBoard(list) {
    var best = null, bestN = -1;
    list.forEach(function (b) {
      var s = boardSums(boardKey(b)), n = s.d30 === null ? s.today : s.d30;
      if (n > bestN) { best = boardKey(b); bestN = n; }
    });
    return best;
  }

  $('qr-board').addEventListener('change', function (e) {
    S.selected = e.target.value;
    renderChart(S.selected);
  });

  function dailyPoints(key) {
    var pts = S.series.get(key), b = S.boards.get(key);
    if (!pts || !S.days) return null;
    var today = Date.parse(S.days.today);
    return pts.map(function (p) {
      var tm = Date.parse(p.time);
      return { time: tm, total: tm >= today && b ? b.scans_today : p.total };
    });
  }

  function csvURL(b) {
    var q = new URLSearchParams({ site: b.site, from: S.days.from30, to: S.days.to, step: 'day', format: 'csv' });
    return '/api/v1/qr-boards/' + encodeURIComponent(b.id) + '/scans?' + q.toString();
  }

  var chartKey = null, chartData = '';
  function renderChart(key) {
    var b = key && S.boards.get(key);
    var link = $('qr-csv');
    $('qr-chart-title').textContent = b ? t('chart_title', { b: (b.name || b.id) + ' · ' + siteName(b.site) }) : '';
    if (b && S.days) {
      link.href = csvURL(b);
      link.setAttribute('download', 'qr-' + b.id + '-' + S.days.today.slice(0, 10) + '.csv');
      link.removeAttribute('aria-disabled');
    } else {
      link.removeAttribute('href');
      link.setAttribute('aria-disabled', 'true');
    }
    var pts = key ? dailyPoints(key) : null;
    var table = $('qr-days').tBodies[0];
    if (!pts) {
      table.replaceChildren();
      if (S.chart) { S.chart.destroy(); S.chart = null; chartKey = null; }
      return;
    }
    table.replaceChildren.apply(table, pts.slice().reverse().map(function (p) {
      return el('tr', null, el('th', { scope: 'row', text: day(p.time) }), el('td', { class: 'num', text: num(p.total) }));
    }));
    var data = [pts.map(function (p) { return p.time / 1000; }), pts.map(function (p) { return p.total; })];
    var sig = S.lang + key + JSON.stringify(data);
    if (S.chart && chartKey === key && chartData === sig) return;
    chartKey = key; chartData = sig;
    if (typeof uPlot === 'undefined') return;
    var box = $('qr-chart');
    var width = Math.max(260, box.clientWidth || 600);
    if (S.chart) S.chart.destroy();
    S.chart = new uPlot({
      width: width, height: 220,
      legend: { show: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: { x: { time: true, range: function (u, min, max) { return [min - 43200, max + 43200]; } }, y: { range: function (u, min, max) { return [0, Math.max(5, max * 1.1)]; } } },
      tzDate: TZ ? function (ts) { return uPlot.tzDate(new Date(ts * 1000), TZ); } : undefined,
      axes: [
        { stroke: '#333', grid: { show: false }, space: 50, values: function (u, splits) { return splits.map(function (s) { return dayMonth(new Date(s * 1000)); }); } },
        { stroke: '#333', grid: { stroke: '#e3e3e3' }, values: function (u, splits) { return splits.map(function (s) { return num(s); }); } }
      ],
      series: [{}, {
        label: t('scans'), fill: '#1565c0', stroke: '#1565c0', width: 0,
        paths: uPlot.paths.bars({ size: [0.7, 40], align: 0 }),
        points: { show: false }
      }]
    }, data, box);
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (S.chart) S.chart.setSize({ width: Math.max(260, $('qr-chart').clientWidth || 600), height: 220 });
    }, 150);
  });

  // loadSeries fetches the last 30 village days of every board, four at a
  // time; it runs at start, every minute and when the day changes.
  var seriesDay = null, seriesLoading = false;
  function loadSeries() {
    if (!S.days || seriesLoading) return;
    seriesLoading = true;
    seriesDay = S.days.today;
    var keys = Array.from(S.boards.keys()), i = 0, failed = false, running = 0;
    return new Promise(function (done) {
      function next() {
        if (i >= keys.length && running === 0) { seriesLoading = false; S.seriesFailed = failed; renderBoards(); done(); return; }
        while (running < 4 && i < keys.length) {
          var key = keys[i++], b = S.boards.get(key);
          running++;
          var q = new URLSearchParams({ site: b.site, from: S.days.from30, to: S.days.to, step: 'day' });
          fetch('/api/v1/qr-boards/' + encodeURIComponent(b.id) + '/scans?' + q.toString(), { cache: 'no-store' })
            .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
            .then((function (k) { return function (j) { S.series.set(k, (j.points || []).map(function (p) { return { time: p.time, total: p.total, mqtt: p.mqtt, printed: p.printed, unique: p.unique }; })); }; })(key))
            .catch(function () { failed = true; })
            .then(function () { running--; next(); });
        }
      }
      next();
    });
  }

  // ---- alerts ---------------------------------------------------------

  // The alert API is hub/alert's: GET /api/v1/alerts {firing, silenced,
  // pending, resolved}, GET/POST /api/v1/silences, DELETE
  // /api/v1/silences/{id}. A hub without alerting answers 404 and the
  // panel says so.
  var ALERT_NAMES = ['CameraDown', 'CameraDegraded', 'QRBoardSilent', 'HubDegraded'];
  // An alert raised because the device's MQTT link went down says
  // "mất kết nối", not "mất hình" (docs/terms.md).
  function alertName(n, reason) {
    if (reason === 'offline' || reason === 'disconnected') { var ko = 'a_' + n + '_offline', so = t(ko); if (so !== ko) return so; }
    var k = 'a_' + n, s = t(k); return s === k ? n : s;
  }
  function reasonText(r) { var k = 'r_' + r, s = t(k); return s === k ? r : s; }
  function deviceLabel(site, id, name, siteNameHint) {
    var c = S.cams.get(site + '/' + id) || S.boards.get(site + '/' + id);
    var dn = name || (c && c.name) || id || '';
    var sn = site ? (siteNameHint || siteName(site)) : '';
    return dn + (sn ? ' · ' + sn : '');
  }
  function alertItem(a, showState) {
    var resolved = a.state === 'resolved';
    var li = el('li', { class: 'alert ' + (resolved ? 'resolved' : 'firing'), 'data-alert': a.alert, 'data-device': a.site + '/' + a.device },
      el('strong', { text: alertName(a.alert, a.reason) }), ' ',
      el('span', { text: deviceLabel(a.site, a.device, a.device_name, a.site_name) }));
    if (a.since) li.append(' · ', el('span', { class: 'when', text: t('since', { t: dateTime(a.since) }) }));
    if (showState) li.append(' · ', el('span', { text: resolved ? t('resolved') + (a.resolved_at ? ' ' + dateTime(a.resolved_at) : '') : t('firing_state') }));
    if (a.reason) li.append(' · ', el('span', { text: reasonText(a.reason) }));
    return li;
  }
  function listOrEmpty(ul, items, empty) {
    ul.replaceChildren.apply(ul, items.length ? items : [el('li', { class: 'empty', text: t(empty) })]);
  }

  function renderAlerts() {
    var st = S.alertsState;
    $('alerts-loading').hidden = st !== 'loading';
    $('alerts-unavailable').hidden = st !== 'unavailable';
    $('alerts-error').hidden = st !== 'error';
    $('alerts-body').hidden = st !== 'ok';
    if (st !== 'ok') return;
    var a = S.alerts || {};
    var items = (a.firing || []).map(function (x) { return alertItem(x, false); });
    (a.silenced || []).forEach(function (x) {
      var li = alertItem(x, false);
      li.classList.add('silenced');
      li.append(' · ', el('em', { text: t('silenced') }));
      items.push(li);
    });
    listOrEmpty($('alerts-firing'), items, 'no_firing');
    listOrEmpty($('alerts-history'), (a.resolved || []).slice(0, 20).map(function (x) { return alertItem(x, true); }), 'no_history');
    var sil = (S.silences || []).filter(function (x) { return x.state !== 'expired'; });
    listOrEmpty($('silences'), sil.map(function (x) {
      var m = x.matchers || {};
      var li = el('li', { class: 'silence', 'data-id': x.id },
        el('strong', { text: m.alert ? alertName(m.alert) : t('all_alerts') }), ' ',
        el('span', { text: m.device || m.site ? deviceLabel(m.site, m.device) : '' }),
        x.ends_at ? el('span', { text: ' · ' + t('until', { t: dateTime(x.ends_at) }) }) : null,
        x.daily ? el('span', { text: ' · ' + x.daily.from + '–' + x.daily.to }) : null,
        x.comment ? el('span', { class: 'comment', text: ' · ' + x.comment }) : null, ' ');
      if (x.source === 'api' && S.role === 'admin') {
        var btn = el('button', { type: 'button', class: 'link', text: t('silence_remove') });
        btn.addEventListener('click', function () {
          fetch('/api/v1/silences/' + encodeURIComponent(x.id), { method: 'DELETE', headers: csrfHeaders() }).then(loadAlerts);
        });
        li.append(btn);
      }
      return li;
    }), 'no_silences');

    var dev = $('silence-device'), keep = dev.value;
    var opts = [];
    S.cams.forEach(function (c, k) { opts.push(el('option', { value: k, text: deviceLabel(c.site, c.id) })); });
    S.boards.forEach(function (b, k) { opts.push(el('option', { value: k, text: 'QR · ' + deviceLabel(b.site, b.id) })); });
    dev.replaceChildren.apply(dev, opts);
    if (keep) dev.value = keep;
    var kinds = $('silence-alert'), keepKind = kinds.value;
    kinds.replaceChildren.apply(kinds, [el('option', { value: '', text: t('all_alerts') })].concat(ALERT_NAMES.map(function (n) {
      return el('option', { value: n, text: alertName(n) });
    })));
    kinds.value = keepKind;
  }

  // Changes carry the CSRF cookie's value in a header: a page of another
  // site can neither read the cookie nor set the header.
  function csrfHeaders() {
    var m = document.cookie.match(/(?:^|;\s*)vh_csrf=([^;]+)/);
    return m ? { 'X-CSRF-Token': decodeURIComponent(m[1]) } : {};
  }

  // 404 means the hub has no alerting; any other failure is an error
  // (shown as such, and retried), never "no alerts".
  function loadAlerts() {
    return Promise.all([
      fetch('/api/v1/alerts', { cache: 'no-store' }).then(function (r) { if (!r.ok) { var e = new Error(r.status); e.status = r.status; throw e; } return r.json(); }),
      fetch('/api/v1/silences', { cache: 'no-store' }).then(function (r) { return r.ok ? r.json() : null; }).catch(function () { return null; })
    ]).then(function (res) {
      S.alertsState = 'ok';
      S.alerts = res[0];
      S.silences = (res[1] && res[1].silences) || [];
    }).catch(function (e) {
      S.alertsState = e && e.status === 404 ? 'unavailable' : 'error';
    }).then(function () { renderAlerts(); renderBanner(); });
  }

  $('silence-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var key = $('silence-device').value.split('/');
    var body = {
      site: key[0], device: key[1], alert: $('silence-alert').value || undefined,
      duration: $('silence-for').value,
      comment: $('silence-comment').value || undefined
    };
    var errp = $('silence-error');
    var hdr = csrfHeaders();
    hdr['Content-Type'] = 'application/json';
    fetch('/api/v1/silences', { method: 'POST', headers: hdr, body: JSON.stringify(body) })
      .then(function (r) {
        if (!r.ok) return r.json().catch(function () { return {}; }).then(function (j) { throw new Error(j.error || r.status); });
        errp.hidden = true;
        $('silence-comment').value = '';
      })
      .catch(function (err) { errp.hidden = false; errp.textContent = t('silence_failed', { e: err.message }); })
      .then(loadAlerts);
  });

  // ---- live stream ----------------------------------------------------

  function renderAll() {
    renderCameras();
    renderBoards();
    renderAlerts();
    renderBanner();
    renderReports();
    renderAdmin();
  }

  // ---- hub health banner ----------------------------------------------

  // /readyz lists the hub's failing checks (broker, store, influx); the
  // banner says in words what each means for the village.
  function loadHealth() {
    return fetch('/readyz', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (j) {
      S.problems = (j.checks || []).filter(function (c) { return !c.ok; }).map(function (c) { return c.name; });
      S.healthUnreachable = false;
    }).catch(function () { S.healthUnreachable = true; }).then(renderBanner);
  }
  function renderBanner() {
    var msgs = S.problems.map(function (n) {
      var k = 'h_' + n, s = t(k);
      return s === k ? t('h_other', { n: n }) : s;
    });
    if (S.streamFailed || S.healthUnreachable) msgs.unshift(t('h_unreachable'));
    // The hub's own HubDegraded alert (queue saturated, spool not draining...).
    ((S.alerts && S.alerts.firing) || []).forEach(function (a) {
      if (a.alert === 'HubDegraded') msgs.push(alertName(a.alert, a.reason) + (a.reason ? ': ' + reasonText(a.reason) : ''));
    });
    var b = $('banner');
    b.replaceChildren.apply(b, msgs.map(function (m) { return el('p', { text: m }); }));
    b.hidden = !msgs.length;
    b.setAttribute('data-problems', S.problems.join(' '));
  }

  // ---- reports --------------------------------------------------------

  function monthValue() {
    var m = $('report-month');
    if (!m.value) {
      var p = {};
      new Intl.DateTimeFormat('en-GB', { timeZone: TZ, year: 'numeric', month: '2-digit' }).formatToParts(new Date(hubNow())).forEach(function (x) { p[x.type] = x.value; });
      m.value = p.year + '-' + p.month;
    }
    return m.value;
  }
  function renderReports() {
    var month = monthValue();
    $('report-pdf').href = '/api/v1/reports/qr?format=pdf&month=' + encodeURIComponent(month);
    $('report-pdf').setAttribute('download', 'bao-cao-qr-' + month + '.pdf');
    $('report-csv').href = '/api/v1/reports/qr?format=csv&month=' + encodeURIComponent(month);
    $('report-csv').setAttribute('download', 'bao-cao-qr-' + month + '.csv');
    var per = new Map();
    S.boards.forEach(function (b) { if (b.configured !== false) per.set(b.site, (per.get(b.site) || 0) + 1); });
    var items = [];
    S.sites.forEach(function (s, id) {
      if (!per.get(id)) return;
      items.push(el('li', null, el('a', { href: '/api/v1/qr-sheets/' + encodeURIComponent(id) + '.pdf', download: 'qr-' + id + '.pdf', 'data-site': id,
        text: t('sheet_for', { s: s.name || id, n: num(per.get(id)) }) })));
    });
    var ul = $('sheets');
    if (!S.loaded) { ul.replaceChildren(el('li', { text: S.streamFailed ? t('load_failed') : t('loading') })); return; }
    ul.replaceChildren.apply(ul, items.length ? items : [el('li', { text: t('no_sheets') })]);
    var warn = $('sheet-warn'), w = (S.admin && S.admin.public_url_warnings) || [];
    warn.hidden = !w.length;
    warn.textContent = w.join(' ');
  }
  $('report-month').addEventListener('change', renderReports);
  $('report-form').addEventListener('submit', function (e) { e.preventDefault(); });

  // ---- admin ----------------------------------------------------------

  function loadAdmin() {
    return fetch('/api/v1/admin/info', { cache: 'no-store' }).then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; }).then(function (j) { S.admin = j; renderAdmin(); renderReports(); });
  }
  function sendJSON(method, url, body) {
    var hdr = csrfHeaders();
    hdr['Content-Type'] = 'application/json';
    return fetch(url, { method: method, headers: hdr, body: body === undefined ? undefined : JSON.stringify(body) }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.error || r.status);
        return j;
      });
    });
  }
  // savedMsg: applied at once, or saved for the next start (202).
  function savedMsg(j) { deviceMsg(true, j && j.applied === false ? t('saved_restart') : t('saved')); }
  function deviceMsg(ok, text) {
    var m = $('device-msg');
    m.hidden = false; m.className = ok ? 'ok' : 'error'; m.textContent = text;
  }
  function renderAdmin() {
    if (S.role !== 'admin') return;
    var a = S.admin || {};
    var canEdit = !!a.can_edit;
    $('admin-readonly').hidden = !S.admin || canEdit;
    $('device-form').hidden = !canEdit;
    $('h-add-device').hidden = !canEdit;
    var site = $('dev-site'), keep = site.value, opts = [];
    S.sites.forEach(function (s, id) { opts.push(el('option', { value: id, text: s.name || id })); });
    site.replaceChildren.apply(site, opts);
    if (keep) site.value = keep;
    $('find-cams').hidden = !canEdit;
    var osite = $('onvif-site'), okeep = osite.value;
    osite.replaceChildren.apply(osite, opts.map(function (o) { return o.cloneNode(true); }));
    if (okeep) osite.value = okeep;

    var rows = [];
    // Renaming and approving happen in the row itself (no window.prompt:
    // in-app browsers such as Zalo's block it). While a row is being
    // edited the table is not rebuilt under the person typing.
    function editRow(kind, d, mode) {
      var f = el('form', { id: 'dev-edit', class: 'row-form' });
      var inp = el('input', { id: 'dev-edit-name', type: 'text', maxlength: '120', required: 'required', value: d.name || '' });
      var cancel = el('button', { type: 'button', class: 'link', text: t('cancel') });
      f.append(el('label', { for: 'dev-edit-name', class: 'field', text: t('new_name', { d: d.id }) }, inp),
        el('button', { type: 'submit', text: mode === 'approve' ? t('approve') : t('save') }), cancel);
      function done() { S.editing = null; renderAdmin(); }
      cancel.addEventListener('click', done);
      f.addEventListener('submit', function (e) {
        e.preventDefault();
        var name = inp.value.trim();
        var req = mode === 'approve' ?
          sendJSON('POST', '/api/v1/admin/devices', { kind: kind, site: d.site, id: d.id, name: name }) :
          sendJSON('PUT', '/api/v1/admin/devices/' + kind + '/' + encodeURIComponent(d.site) + '/' + encodeURIComponent(d.id), { name: name });
        req.then(savedMsg, function (err) { deviceMsg(false, t('save_failed', { e: err.message })); }).then(done);
      });
      setTimeout(function () { inp.focus(); }, 0);
      return f;
    }
    // Rejecting asks first, in the row (window.confirm is blocked in
    // in-app browsers too). kind is "camera" or "board", as the hub's
    // DELETE /api/v1/admin/devices/{kind}/{site}/{id} takes it.
    function rejectRow(kind, d) {
      var label = d.name || d.id;
      var f = el('form', { id: 'dev-edit', class: 'row-form reject' });
      var yes = el('button', { type: 'submit', class: 'danger', text: t('reject') });
      var cancel = el('button', { type: 'button', class: 'link', text: t('cancel') });
      f.append(el('p', { class: 'confirm', text: t('reject_confirm', { d: label }) }), yes, cancel);
      function done() { S.editing = null; renderAdmin(); }
      cancel.addEventListener('click', done);
      f.addEventListener('submit', function (e) {
        e.preventDefault();
        yes.disabled = true;
        sendJSON('DELETE', '/api/v1/admin/devices/' + kind + '/' + encodeURIComponent(d.site) + '/' + encodeURIComponent(d.id)).then(function () {
          // The hub forgot it: it leaves the page now, not at the next
          // snapshot (which will not list it either).
          var k = d.site + '/' + d.id;
          if (kind === 'camera') { S.cams.delete(k); renderCameras([k]); } else { S.boards.delete(k); renderBoards(); }
          renderReports();
          deviceMsg(true, t('rejected', { d: label }));
        }, function (err) { deviceMsg(false, t('reject_failed', { e: err.message })); }).then(done);
      });
      setTimeout(function () { yes.focus(); }, 0);
      return f;
    }
    function devRow(kind, d) {
      var key = kind + '/' + d.site + '/' + d.id, label = d.name || d.id;
      var acts = el('td', { 'data-label': t('actions') });
      function act(name, text, fn) {
        var b = el('button', { type: 'button', class: 'link', 'data-act': name, text: text });
        b.addEventListener('click', fn);
        acts.append(b, ' ');
      }
      if (canEdit && d.configured !== false) {
        act('rename', t('rename'), function () { S.editing = { key: key, mode: 'rename' }; renderAdmin(); });
      }
      if (canEdit && d.configured === false) {
        act('approve', t('approve'), function () { S.editing = { key: key, mode: 'approve' }; renderAdmin(); });
        if (a.can_reject) {
          act('reject', t('reject'), function () { S.editing = { key: key, mode: 'reject' }; renderAdmin(); });
        }
      }
      var nameCell = el('th', { scope: 'row' });
      if (S.editing && S.editing.key === key) nameCell.append(S.editing.mode === 'reject' ? rejectRow(kind, d) : editRow(kind, d, S.editing.mode));
      else nameCell.textContent = label;
      rows.push(el('tr', { 'data-key': key, 'data-configured': String(d.configured !== false) },
        nameCell,
        el('td', { 'data-label': t('kind'), text: t(kind === 'camera' ? 'kind_camera' : 'kind_board') }),
        el('td', { 'data-label': t('site'), text: siteName(d.site) }),
        el('td', { 'data-label': t('approval'), text: d.configured === false ? t('auto_registered') : t('approved') }),
        acts));
    }
    var body = $('dev-table').tBodies[0];
    var editing = S.editing && document.getElementById('dev-edit');
    if (!editing) {
      S.cams.forEach(function (c) { devRow('camera', c); });
      S.boards.forEach(function (b) { devRow('board', b); });
      if (!S.loaded) rows = [el('tr', { class: 'loading' }, el('td', { colspan: '5', text: S.streamFailed ? t('load_failed') : t('loading') }))];
      else if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: '5', text: t('no_devices') })));
      body.replaceChildren.apply(body, rows);
    }

    var ns = a.notifiers || [];
    var ul = $('notifiers');
    if (!S.admin) { ul.replaceChildren(el('li', { text: t('loading') })); return; }
    if (!ns.length) { ul.replaceChildren(el('li', { class: 'empty', text: t('no_notifiers') })); return; }
    // Keep open answers: rebuild only the list items that are new.
    ns.forEach(function (n) {
      var li = ul.querySelector('li[data-notifier="' + CSS.escape(n.name) + '"]');
      if (!li) {
        ul.querySelectorAll('li:not([data-notifier])').forEach(function (x) { x.remove(); });
        li = el('li', { 'data-notifier': n.name });
        var btn = el('button', { type: 'submit', text: t('test_send') });
        var out = el('div', { class: 'answer', role: 'status' });
        btn.addEventListener('click', function () {
          btn.disabled = true;
          out.replaceChildren(el('p', { text: t('sending') }));
          sendJSON('POST', '/api/v1/admin/notifiers/' + encodeURIComponent(n.name) + '/test').then(function (r) {
            out.replaceChildren(el('p', { class: r.ok ? 'ok' : 'error', text: (r.ok ? t('test_ok') : t('test_failed')) + (r.status ? ' (HTTP ' + r.status + ')' : '') }),
              el('p', { text: t('channel_answer') + ':' }), el('pre', { class: 'raw', text: r.answer || '' }));
            out.setAttribute('data-ok', String(!!r.ok));
            loadAdmin(); // the channel's health changed
          }, function (e) {
            out.replaceChildren(el('p', { class: 'error', text: t('test_failed') + ' ' + e.message }));
            out.setAttribute('data-ok', 'false');
          }).then(function () { btn.disabled = false; });
        });
        li.append(el('strong', { class: 'nname' }), ' ', el('span', { class: 'ntype' }), ' · ', el('span', { class: 'nhealth' }), ' ', btn, out);
        ul.append(li);
      }
      li.className = n.healthy ? '' : 'unhealthy';
      li.querySelector('.nname').textContent = n.name;
      li.querySelector('.ntype').textContent = n.type;
      li.querySelector('.nhealth').textContent = (n.healthy ? t('healthy') : t('unhealthy')) + (n.last_error ? ': ' + n.last_error : '');
    });
  }
  $('device-form').addEventListener('submit', function (e) {
    e.preventDefault();
    sendJSON('POST', '/api/v1/admin/devices', { kind: $('dev-kind').value, site: $('dev-site').value, id: $('dev-id').value.trim(), name: $('dev-name').value.trim(), url: $('dev-url').value.trim() })
      .then(function (j) { savedMsg(j); $('dev-id').value = ''; $('dev-name').value = ''; $('dev-url').value = ''; },
        function (err) { deviceMsg(false, t('save_failed', { e: err.message })); });
  });

  // ---- "Tìm camera": find ONVIF cameras and add the chosen ones ---------
  // The password goes to the hub in the request body only; the hub keeps
  // it in a 0600 file and never sends it back. The field is emptied once
  // the cameras are added.
  S.found = [];
  function onvifMsg(cls, text) {
    var m = $('onvif-msg');
    m.hidden = false; m.className = cls; m.textContent = text;
  }
  function onvifCreds() { return { username: $('onvif-user').value.trim(), password: $('onvif-pass').value }; }
  function renderFound(known) {
    var table = $('onvif-table'), body = table.tBodies[0];
    var have = new Set(known || []);
    var rows = S.found.map(function (d) {
      var usable = !!d.main_uri && !have.has(d.xaddr);
      var box = el('input', { type: 'checkbox', value: d.xaddr, 'aria-label': d.name || d.xaddr });
      box.checked = usable; box.disabled = !usable;
      var note = [];
      if (d.unauthorized) note.push(t('cam_unauthorized'));
      else if (d.error) note.push(d.error);
      else note.push(t('cam_ok'));
      if (have.has(d.xaddr)) note.push(t('cam_known'));
      var off = Math.abs((d.clock_offset_ns || 0) / 1e6);
      if (off > 60000) note.push(t('clock_off', { d: duration(off) }));
      return el('tr', { 'data-xaddr': d.xaddr, 'data-state': d.unauthorized ? 'unauthorized' : d.error ? 'error' : 'ok', class: d.error ? 'unhealthy' : '' },
        el('td', { 'data-label': t('choose') }, box),
        el('th', { scope: 'row', text: d.name || [d.manufacturer, d.model].filter(Boolean).join(' ') || '—' }),
        el('td', { 'data-label': t('make_model'), text: [d.manufacturer, d.model].filter(Boolean).join(' ') || '—' }),
        el('td', { 'data-label': t('onvif_addr'), class: 'url', text: d.xaddr }),
        el('td', { 'data-label': t('main_stream'), class: 'url', text: d.main_uri || '—' }),
        el('td', { 'data-label': t('note'), class: 'cnote', text: note.join('; ') }));
    });
    body.replaceChildren.apply(body, rows);
    table.hidden = !rows.length;
    $('onvif-add').hidden = !S.found.some(function (d) { return d.main_uri && !have.has(d.xaddr); });
  }
  function findCams(path, extra, busy) {
    var body = onvifCreds();
    Object.keys(extra).forEach(function (k) { body[k] = extra[k]; });
    onvifMsg('', t(busy));
    $('onvif-discover').disabled = $('onvif-inspect').disabled = true;
    return sendJSON('POST', '/api/v1/admin/cameras/' + path, body).then(function (j) {
      var devs = j.devices || [];
      if (path === 'inspect') {
        // Reading by URL adds to the list (several cameras on other subnets).
        S.found = S.found.filter(function (d) { return !devs.some(function (x) { return x.xaddr === d.xaddr; }); }).concat(devs);
      } else {
        S.found = devs;
      }
      renderFound(j.known);
      onvifMsg('ok', devs.length ? t('found_n', { n: num(S.found.length) }) : t('found_none'));
    }, function (err) { onvifMsg('error', t('find_failed', { e: err.message })); })
      .then(function () { $('onvif-discover').disabled = $('onvif-inspect').disabled = false; });
  }
  $('onvif-form').addEventListener('submit', function (e) {
    e.preventDefault();
    findCams('discover', {}, 'searching');
  });
  $('onvif-inspect').addEventListener('click', function () {
    var u = $('onvif-url').value.trim();
    if (!u) { onvifMsg('error', t('need_url')); $('onvif-url').focus(); return; }
    findCams('inspect', { url: u }, 'reading');
  });
  $('onvif-add').addEventListener('click', function () {
    var chosen = Array.from($('onvif-table').querySelectorAll('input[type="checkbox"]:checked')).map(function (b) { return b.value; });
    if (!chosen.length) return;
    var body = onvifCreds();
    body.site = $('onvif-site').value; body.xaddrs = chosen;
    onvifMsg('', t('adding'));
    $('onvif-add').disabled = true;
    sendJSON('POST', '/api/v1/admin/cameras/add', body).then(function (j) {
      var ids = j.added || [];
      var text = !ids.length ? t('cams_unchanged') : t(j.applied === false ? 'added_cams_restart' : 'added_cams', { n: num(ids.length), ids: ids.join(', ') });
      (j.failed || []).forEach(function (f) { text += ' ' + f.xaddr + ': ' + f.error + '.'; });
      onvifMsg('ok', text);
      $('onvif-pass').value = '';
      S.found = [];
      renderFound([]);
    }, function (err) { onvifMsg('error', t('find_failed', { e: err.message })); })
      .then(function () { $('onvif-add').disabled = false; });
  });

  function header(m) {
    if (m.now) S.offset = Date.parse(m.now) - Date.now();
    if (m.days) {
      var newDay = !S.days || S.days.today !== m.days.today;
      S.days = m.days;
      if (newDay && S.boards.size) loadSeries();
    }
    if (m.sites) { S.sites = new Map(); m.sites.forEach(function (s) { S.sites.set(s.id, s); }); }
  }

  function connect() {
    var es = new EventSource('/ui/stream');
    es.addEventListener('full', function (ev) {
      var m = JSON.parse(ev.data);
      setConn('live');
      S.loaded = true;
      S.streamFailed = false;
      var hadBoards = S.boards.size;
      S.cams = new Map(); S.boards = new Map();
      (m.cameras || []).forEach(function (c) { S.cams.set(c.site + '/' + c.id, c); });
      (m.boards || []).forEach(function (b) { S.boards.set(boardKey(b), b); });
      header(m);
      cardNodes.forEach(function (n) { n.remove(); });
      cardNodes.clear();
      renderCameras();
      renderBoards();
      renderBanner();
      renderReports();
      renderAdmin();
      if (!hadBoards || S.boards.size !== hadBoards) loadSeries();
      if (!document.body.hasAttribute('data-ready')) {
        document.body.setAttribute('data-ready', 'true');
        // Time to first render, for anyone measuring (the browser test does).
        if (window.performance && performance.mark) performance.mark('villagehub-first-render');
      }
    });
    es.addEventListener('delta', function (ev) {
      var m = JSON.parse(ev.data);
      header(m);
      var changed = [];
      (m.cameras || []).forEach(function (c) { var k = c.site + '/' + c.id; S.cams.set(k, c); changed.push(k); });
      (m.removed_cameras || []).forEach(function (k) { S.cams.delete(k); changed.push(k); });
      var boardsChanged = false, newBoard = false;
      (m.boards || []).forEach(function (b) { if (!S.boards.has(boardKey(b))) newBoard = true; S.boards.set(boardKey(b), b); boardsChanged = true; });
      (m.removed_boards || []).forEach(function (k) { S.boards.delete(k); boardsChanged = true; });
      if (m.sites) renderCameras(); else if (changed.length) renderCameras(changed);
      if (boardsChanged || m.sites) renderBoards();
      if (boardsChanged || changed.length || m.sites) { renderReports(); renderAdmin(); }
      if (newBoard) loadSeries();
    });
    es.addEventListener('ping', function (ev) { header(JSON.parse(ev.data)); setConn('live'); if (S.streamFailed) { S.streamFailed = false; renderBanner(); } });
    es.onopen = function () { if (S.streamFailed) { S.streamFailed = false; renderBanner(); } };
    es.onerror = function () {
      setConn('lost');
      S.streamFailed = true;
      renderBanner();
      if (!S.loaded) { renderCameras(); renderBoards(); renderReports(); renderAdmin(); }
    };
  }

  applyLanguage();
  connect();
  loadAlerts();
  loadHealth();
  loadAdmin();
  setInterval(loadHealth, 10000);
  setInterval(loadAdmin, 30000);
  setInterval(function () { updateSince($('cam-grid')); }, 1000);
  setInterval(loadSeries, 60000);
  setInterval(loadAlerts, 5000);
})();
