"""The Vietnamese text of the dashboards: every English title, description, legend and column
name that dashboards/generate.py writes, and its translation (terms: docs/vi/glossary.md).

generate.py writes the Vietnamese set (dashboards/vi/) from the English boards with this table
and stops, naming the string, when a new panel's text has no entry here: add it, then run
python dashboards/generate.py. Label names and values (host, department, reason codes) and
every expression are never translated: they are the same series in both languages.
"""

from __future__ import annotations

TEXT: dict[str, str] = {
    # Dashboards
    "dcguard / Province": "dcguard / Tỉnh",
    "Every department's servers at a glance: who is down, who is at risk of data loss.": "Máy chủ của mọi đơn vị trong một màn hình: máy nào mất liên lạc, máy nào có rủi ro "
    "mất dữ liệu.",
    "dcguard / Department": "dcguard / Đơn vị",
    "One department's servers: liveness, data-loss risk, backups and security.": "Máy chủ của một đơn vị: hoạt động, rủi ro mất dữ liệu, sao lưu và an toàn thông tin.",
    "dcguard / Server": "dcguard / Máy chủ",
    "One server: health, filesystems with their fill forecast, disks, RAID, backups, security.": "Một máy chủ: tình trạng, hệ thống tệp và dự báo đầy, ổ đĩa, RAID, sao lưu, an toàn "
    "thông tin.",
    "dcguard / Backups": "dcguard / Sao lưu",
    "Every backup job of the province: age against its RPO, failures, same-device backups.": "Mọi tác vụ sao lưu của tỉnh: tuổi so với RPO, lỗi, bản sao lưu nằm cùng ổ đĩa.",
    "dcguard / Security": "dcguard / An toàn thông tin",
    "Security events and detections across the province, for the SOC.": "Sự kiện an toàn thông tin và phát hiện trên toàn tỉnh, dành cho SOC.",
    "dcguard": "dcguard",
    # Variables and links
    "Data source": "Nguồn dữ liệu",
    "Department": "Đơn vị",
    "Server": "Máy chủ",
    "Open server ${__data.fields.host}": "Mở máy chủ ${__data.fields.host}",
    "Open department ${__data.fields.department}": "Mở đơn vị ${__data.fields.department}",
    # Rows
    "Servers": "Máy chủ",
    "Risk and backups": "Rủi ro và sao lưu",
    "Security and fleet": "An toàn thông tin và tác tử",
    "Security": "An toàn thông tin",
    "Health": "Tình trạng",
    "Filesystems": "Hệ thống tệp",
    "Disks and RAID": "Ổ đĩa và RAID",
    "Backups": "Sao lưu",
    "Summary": "Tổng quan",
    "Jobs": "Tác vụ",
    "Detections": "Phát hiện",
    "Events": "Sự kiện",
    # Panels
    "Servers reporting": "Máy chủ đang báo cáo",
    "Servers down": "Máy chủ mất liên lạc",
    "Servers at risk": "Máy chủ có rủi ro",
    "Stale backups": "Bản sao lưu quá hạn",
    "Departments": "Đơn vị",
    "Servers up by department": "Máy chủ hoạt động theo đơn vị",
    "Servers at risk of data loss, worst first": "Máy chủ có rủi ro mất dữ liệu, nặng nhất trước",
    "Each reason a server is at risk, with the server's risk score (0-100).": "Từng lý do khiến máy chủ có rủi ro, kèm điểm rủi ro của máy chủ (0-100).",
    "Backup freshness by department (oldest job, share of its RPO)": "Độ mới của sao lưu theo đơn vị (tác vụ cũ nhất, tỷ lệ so với RPO)",
    "Risk reasons": "Lý do rủi ro",
    "Security detections": "Phát hiện an toàn thông tin",
    "Brute force, distributed attacks, logins after failures, new privileged accounts.": "Dò mật khẩu, tấn công phân tán, đăng nhập sau nhiều lần thất bại, tài khoản đặc "
    "quyền mới.",
    "Agents by version": "Tác tử theo phiên bản",
    "Worst risk score": "Điểm rủi ro cao nhất",
    "Security events by severity": "Sự kiện an toàn thông tin theo mức độ",
    "Security events by type": "Sự kiện an toàn thông tin theo loại",
    "Backup jobs": "Tác vụ sao lưu",
    "Data locations": "Vị trí dữ liệu",
    "backed up": "có sao lưu",
    "Every directory the agent found holding data (database data directories, Samba shares, web roots, /srv, /home, named paths): backed up 0 means no backup job covers it (risk reason data_not_backed_up).": "Mọi thư mục chứa dữ liệu mà tác tử tìm thấy (thư mục dữ liệu của cơ sở dữ liệu, "
    "thư mục chia sẻ Samba, thư mục gốc web, /srv, /home, đường dẫn khai báo): có sao lưu bằng 0 "
    "nghĩa là không tác vụ sao lưu nào bao gồm nó (lý do rủi ro data_not_backed_up).",
    "Age of the last successful backup against the job's RPO: above 100% is stale. Last "
    "restore test: how long ago a sample of the newest snapshot was restored and compared "
    "(empty: never); restore ok 0 means it failed. Copy location: same_disk, other_disk, "
    "this_host, other_host, offline or immutable.": "Tuổi của lần sao lưu thành công gần nhất so với RPO của tác vụ: trên 100% là quá hạn. "
    "Lần diễn tập khôi phục gần nhất: cách đây bao lâu một mẫu của bản chụp mới nhất được "
    "khôi phục và so sánh (trống: chưa bao giờ); khôi phục tốt 0 nghĩa là đã thất bại. Vị "
    "trí bản sao: same_disk, other_disk, this_host, other_host, offline hoặc immutable.",
    "Servers with no off-host backup copy, by department": "Máy chủ không có bản sao lưu ở máy chủ khác, theo đơn vị",
    "Servers whose every backup lies on the server itself: one lost server (fire, theft, "
    "ransomware) takes its backups too.": "Máy chủ mà mọi bản sao lưu đều nằm trên chính nó: mất một máy chủ (cháy, mất trộm, "
    "mã độc tống tiền) là mất luôn các bản sao lưu.",
    "Restore test failed": "Diễn tập khôi phục thất bại",
    "Reporting": "Đang báo cáo",
    "Silent for": "Mất liên lạc trong",
    "Risk score": "Điểm rủi ro",
    "Up since": "Chạy từ",
    "CPU busy": "CPU bận",
    "Memory available": "Bộ nhớ còn trống",
    "Load": "Tải",
    "Free space, with the 6 h trend 24 h ahead": "Dung lượng trống, và xu hướng 6 giờ "
    "kéo dài thêm 24 giờ",
    "SMART health": "Tình trạng SMART",
    "SMART failure predictors (raw)": "Chỉ số SMART báo trước hỏng hóc (giá trị thô)",
    "SMART readable or asleep": "SMART đọc được hay ổ đĩa đang ngủ",
    "asleep 1: the disk is in standby and was not woken; its SMART values are the last read "
    "(none if it slept since the agent started). readable 0 and asleep 0: smartctl could not "
    "read it; the agent's smart source status says why.": "đang ngủ 1: ổ đĩa ở chế độ chờ và không bị đánh thức; giá trị SMART là lần đọc gần "
    "nhất (không có nếu ổ đã ngủ từ khi tác tử khởi động). đọc được 0 và đang ngủ 0: "
    "smartctl không đọc được ổ đĩa; trạng thái nguồn smart của tác tử cho biết lý do.",
    "RAID arrays": "Mảng RAID",
    "Stale": "Quá hạn",
    "Last run failed": "Lần chạy gần nhất lỗi",
    "On the same disk": "Nằm cùng ổ đĩa",
    "Servers without backup": "Máy chủ không có sao lưu",
    "Never verified": "Chưa từng kiểm tra",
    "Oldest backup by department (share of its RPO)": "Bản sao lưu cũ nhất theo đơn vị (tỷ lệ so với RPO)",
    "Backup size": "Dung lượng sao lưu",
    "Servers with ransomware signs": "Máy chủ có dấu hiệu mã độc tống tiền",
    "Ransomware spreading (1 h)": "Mã độc tống tiền lây lan (1 giờ)",
    "Brute force (1 h)": "Dò mật khẩu (1 giờ)",
    "Distributed attacks (1 h)": "Tấn công phân tán (1 giờ)",
    "Logins after failures (1 h)": "Đăng nhập sau thất bại (1 giờ)",
    "New privileged accounts (1 h)": "Tài khoản đặc quyền mới (1 giờ)",
    "Detections by department": "Phát hiện theo đơn vị",
    "Events by severity": "Sự kiện theo mức độ",
    "Events by type": "Sự kiện theo loại",
    "Servers with the most events (last hour)": "Máy chủ có nhiều sự kiện nhất (1 giờ qua)",
    # Columns and legends
    "age": "tuổi",
    "RPO": "RPO",
    "size": "dung lượng",
    "age / RPO": "tuổi / RPO",
    "last run ok": "lần chạy gần nhất tốt",
    "same device": "cùng thiết bị",
    "last restore test": "diễn tập khôi phục gần nhất",
    "restore ok": "khôi phục tốt",
    "copy location": "vị trí bản sao",
    "copy location known": "biết vị trí bản sao",
    "silent for": "mất liên lạc trong",
    "up": "hoạt động",
    "risk": "rủi ro",
    "risk score": "điểm rủi ro",
    "servers": "máy chủ",
    "at risk": "có rủi ro",
    "worst risk": "rủi ro cao nhất",
    "worst risk score": "điểm rủi ro cao nhất",
    "events": "sự kiện",
    "cpu": "CPU",
    "available": "còn trống",
    "load1": "load1",
    "used": "đã dùng",
    "full within 24 h": "đầy trong 24 giờ",
    "read-only": "chỉ đọc",
    "{{mountpoint}} in 24 h": "{{mountpoint}} sau 24 giờ",
    "healthy": "tốt",
    "raw": "giá trị thô",
    "readable": "đọc được",
    "asleep": "đang ngủ",
    "degraded": "suy giảm",
    "active": "ổ hoạt động",
    "total": "tổng số ổ",
}
