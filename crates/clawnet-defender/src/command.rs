//! The command-risk scorer: shell-like content that is actually dangerous.
//!
//! Rules run over the `shell` view of a normalised text (lowercase, quoting
//! tricks undone). Ordinary commands (`ls -la`, `git push`, `cargo test`,
//! `rm -rf ./build`, `curl https://api.example.com/health`) match nothing;
//! what matters is the target and the combination: `rm -rf /`, `curl … | sh`,
//! `cat ~/.ssh/id_rsa | nc …`, `bash -i >& /dev/tcp/…`, `chmod -R 777 /`.

use regex::bytes::Regex;

use crate::normalize::Normalized;
use crate::rules::{excerpt_at, inside, quote_regex, quoted_spans, regex, RuleDef, RuleSet};
use crate::Signal;

/// Paths whose recursive deletion is destructive.
const ROOTISH: &str = r#"['"]?(?:/\*?|/\.\*?|~/?\*?|\$\{?home\}?/?\*?|/(?:etc|usr|var|boot|bin|sbin|lib|lib64|lib32|home|root|opt|srv|dev|sys|proc|mnt|media|snap|users|system|library|applications|private)/?\*?|[a-z]:[\\/]?\*?|\\\*?)['"]?(?:$|[\s;&|)`])"#;

/// Credential and secret files.
const CRED: &str = r"(?:\.ssh/(?:id_(?:rsa|dsa|ecdsa|ed25519|ecdsa_sk|ed25519_sk)(?:$|[^.a-z0-9_])|\*|authorized_keys)|/etc/shadow|/etc/gshadow|/etc/sudoers|\.aws/credentials|\.aws/config|\.netrc|\.git-credentials|\.docker/config\.json|\.kube/config|\.npmrc|\.pypirc|\.pgpass|\.my\.cnf|\.vault-token|\.config/gcloud|application_default_credentials|\.azure/|\.terraform\.d/credentials|credentials\.json|service[-_]account[^\s]*\.json|\.gnupg/|\.bash_history|\.zsh_history|login\s?data|cookies\.sqlite|key4\.db|logins\.json|\.password-store|wallet\.dat|\.kdbx|/proc/self/environ|/proc/\d+/environ|\bid_rsa(?:$|[^.a-z0-9_])|(?:priv(?:ate)?[-_.]?key|\bkey)\.pem\b|\.key\b|\.p12\b|\.pfx\b)";

const NET: &str = r"(?:curl|wget|nc|ncat|netcat|socat|scp|rsync|ftp|tftp|sftp|http|https|httpie|xh|invoke-webrequest|iwr|irm|invoke-restmethod|openssl\s+s_client|telnet)";

const SH: &str =
    r"(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?(?:/usr)?(?:/bin/)?(?:ba|z|k|c|tc|da|fi|a)?sh\b";

fn defs() -> Vec<(&'static str, f32, String)> {
    let r = ROOTISH;
    let cred = CRED;
    let net = NET;
    let sh = SH;
    vec![
        // --- destructive deletes -------------------------------------------
        ("command.destructive_delete", 0.95, format!(r"<C>rm\s+(?:[^\n;&|]*\s)?-(?:[a-z]*r[a-z]*|-recursive)\s+(?:[^\n;&|]*\s)?{r}")),
        ("command.destructive_delete", 0.95, r"--no-preserve-root\b".to_string()),
        ("command.destructive_delete", 0.9, r"\bcd\s+(?:/|~|\$\{?home\}?|/(?:etc|usr|var|home|boot|bin))/?\s*(?:&&|;|\n)\s*(?:sudo\s+)?rm\s+(?:[^\n;&|]*\s)?-(?:[a-z]*r[a-z]*|-recursive)\s+(?:[^\n;&|]*\s)?['\x22]?(?:\*|\.|\./\*|\.\*)['\x22]?(?:$|[\s;&|)`])".to_string()),
        ("command.destructive_delete", 0.4, r#"<C>rm\s+(?:[^\n;&|]*\s)?-(?:[a-z]*r[a-z]*|-recursive)\s+(?:[^\n;&|]*\s)?['"]?(?:\*|\.|\.\.|\.\./?\*?|\./\*)['"]?(?:$|[\s;&|)`])"#.to_string()),
        ("command.destructive_delete", 0.9, format!(r"<C>mv\s+(?:-\S+\s+)*{}\s*/dev/null", r#"['"]?(?:/\*?|~/?\*?|\$\{?home\}?/?\*?|/(?:etc|usr|var|boot|bin|home|root)/?\*?)['"]?"#)),
        ("command.destructive_delete", 0.85, r"<C>find\s+(?:/|~|\$home|/home|/etc|/usr|/var)\s[^\n]*(?:-delete\b|-exec\s+(?:sudo\s+)?(?:rm|shred)\b)".to_string()),
        ("command.destructive_delete", 0.9, r"(?:^|[^a-z0-9_])(?:rd|rmdir|del|erase)\s+(?:/[a-z]\s+)*(?:/[sq]\s+)+(?:/[a-z]\s+)*(?:[a-z]:\\?\s*$|[a-z]:\\\*|[a-z]:\\(?:windows|users|program)|%(?:systemroot|windir|userprofile|systemdrive)%|\\\*)".to_string()),
        ("command.destructive_delete", 0.9, r"(?:^|[^a-z0-9_])format(?:\.com)?\s+[a-z]:(?:\s|$|/)".to_string()),
        ("command.destructive_delete", 0.9, r"remove-item\s[^\n]*-recurse[^\n]*(?:[a-z]:\\\s*(?:$|-)|[a-z]:\\\*|[a-z]:\\windows|\$env:(?:userprofile|systemroot|homepath)|\s~[\s\\/]|\s/\s)".to_string()),
        ("command.destructive_delete", 0.55, r"\bdrop\s+(?:database|schema)\s+(?:if\s+exists\s+)?[a-z0-9_`'\x22]+".to_string()),
        ("command.destructive_delete", 0.8, r"'\s*;\s*(?:drop\s+(?:table|database)|delete\s+from|truncate)\b".to_string()),
        ("command.destructive_delete", 0.6, r"\bgit\s+push\s+[^\n]*(?:--force|\s-f\b)[^\n]*\s(?:--all|--mirror)\b|\bgit\s+push\s+[^\n]*--mirror\b[^\n]*(?:--force|\s-f\b)".to_string()),
        // --- disk wipes -----------------------------------------------------
        ("command.disk_wipe", 0.95, r"<C>dd\s[^\n]*\bof=/dev/(?:sd|hd|nvme|xvd|vd|mmcblk|disk|rdisk|mapper|md|dm-|root|mem|kmem)".to_string()),
        ("command.disk_wipe", 0.9, r"<C>mkfs(?:\.[a-z0-9]+)?\s+(?:-\S+\s+)*(?:\S+\s+)?/dev/".to_string()),
        ("command.disk_wipe", 0.9, r"(?:>|\btee\s+)\s*/dev/(?:sd[a-z]|hd[a-z]|nvme\d|xvd[a-z]|vd[a-z]|mmcblk\d|disk\d|mem\b|kmem\b)".to_string()),
        ("command.disk_wipe", 0.9, r"<C>(?:shred|wipefs|blkdiscard|sgdisk\s+--zap-all|hdparm\s[^\n]*--security-erase)\s[^\n]*/dev/".to_string()),
        ("command.disk_wipe", 0.85, r#"(?:^|[^a-z0-9_])(?:>|:\s*>|truncate\s+-s\s*0)\s*/etc/(?:passwd|shadow|fstab|sudoers|group|hosts)\b|(?:^|[^>])>\s*/boot/"#.to_string()),
        ("command.disk_wipe", 0.8, r"\bdiskpart\b[^\n]*\bclean\b|\bclear-disk\b|\bcipher\s+/w:".to_string()),
        // --- pipe to shell / remote script execution -------------------------
        ("command.pipe_to_shell", 0.9, format!(r"\b(?:curl|wget|fetch|iwr|irm|invoke-webrequest|invoke-restmethod|lwp-download|aria2c|http|xh)\b[^\n|]*\|\s*{sh}")),
        ("command.pipe_to_shell", 0.85, r"\b(?:curl|wget|fetch|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^\n|]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:python[0-9.]*|perl|ruby|node|php|iex|invoke-expression|pwsh|powershell|osascript|source)\b".to_string()),
        ("command.pipe_to_shell", 0.9, r#"(?:\b(?:ba|z|k|da)?sh|\bsource|(?:^|[\s;&])\.)\s+(?:-\S+\s+)*<\(\s*(?:curl|wget|fetch)\b|\b(?:ba|z|k|da)?sh\s+-c\s+["']?\$\(\s*(?:curl|wget|fetch)\b|\beval\s+["']?\$\(\s*(?:curl|wget|fetch)\b|\b(?:python[0-9.]*|perl|ruby|node|php|pwsh|powershell)\s+(?:-\S+\s+)*-[cer]\s+["']?\$\(\s*(?:curl|wget|fetch)\b|\beval\s+["']?`\s*(?:curl|wget)\b"#.to_string()),
        ("command.pipe_to_shell", 0.9, r"\b(?:iex|invoke-expression)\b[^\n]{0,20}(?:new-object\s+(?:system\.)?net\.webclient|\biwr\b|\birm\b|invoke-webrequest|invoke-restmethod|downloadstring|\bcurl\b|\bwget\b)|(?:new-object\s+(?:system\.)?net\.webclient\)?\.downloadstring\s*\([^\n)]*\)[^\n]{0,20}\|\s*(?:iex|invoke-expression))|\bdownloadstring\([^\n]{0,200}\)[^\n]{0,10}\|\s*iex".to_string()),
        ("command.pipe_to_shell", 0.6, r"\bdownload(?:string|file|data)\s*\(\s*['\x22]https?://".to_string()),
        ("command.pipe_to_shell", 0.8, r"(?:^|[^a-z0-9_])(?:mshta|regsvr32\s[^\n]*/i:\s*https?:|rundll32\s[^\n]*javascript:|certutil\s[^\n]*-urlcache[^\n]*-f|bitsadmin\s[^\n]*/transfer)".to_string()),
        ("command.download_execute", 0.8, r"\b(?:curl|wget)\b[^\n]*(?:&&|;|\n)\s*(?:sudo\s+)?chmod\s+(?:[ugoa]*\+[rwx]*x|[0-7]*[1357])\s+[^\n]*(?:&&|;|\n)\s*(?:sudo\s+)?(?:\./|/tmp/|/dev/shm/|/var/tmp/|~/|(?:ba)?sh\s)".to_string()),
        ("command.download_execute", 0.75, r"\b(?:curl|wget)\b[^\n]*\s(?:/tmp|/dev/shm|/var/tmp)/[^\n]*?(?:&&|;|\n)\s*(?:sudo\s+)?(?:(?:ba|z|da)?sh\s+|chmod\s+\+x\s+|python[0-9.]*\s+|perl\s+|source\s+|\.\s+)?(?:/tmp|/dev/shm|/var/tmp)/".to_string()),
        ("command.download_execute", 0.7, r"\b(?:curl|wget)\b[^\n]*\s(?:-o|-O|--output|--output-document)[\s=]*\S+[^\n]*?(?:&&|;|\n)\s*(?:sudo\s+)?(?:ba|z|da)?sh\s+\S+".to_string()),
        ("command.download_execute", 0.8, r#"\bpython[0-9.]*\s+-c\s+["'][^\n]*(?:urllib|requests|urlopen)[^\n]*\bexec\s*\(|\bexec\s*\(\s*(?:urllib|requests\.get|urlopen)"#.to_string()),
        // --- obfuscated execution ---------------------------------------------
        ("command.obfuscated_exec", 0.9, format!(r"\bbase(?:64|32)\s+(?:-\S+\s+)*(?:-d|--decode|-D)\b[^\n|]*\|\s*{sh}|\|\s*base64\s+(?:-d|--decode|-D)\s*\|\s*{sh}|\|\s*base64\s+(?:-d|--decode)\s*\|\s*(?:python[0-9.]*|perl)\b")),
        ("command.obfuscated_exec", 0.85, format!(r"(?:xxd\s+-r\s+-p|xxd\s+-p\s+-r|printf\s+['\x22]?(?:\\x[0-9a-f]{{2}}){{4,}}|echo\s+-e\s+['\x22]?(?:\\x[0-9a-f]{{2}}){{4,}}|\brev\b|openssl\s+(?:enc\s+)?(?:-)?base64\s+-d)[^\n|]*\|\s*{sh}")),
        ("command.obfuscated_exec", 0.8, r"\beval\s*\(?\s*(?:base64_decode|atob|b64decode|gzinflate|str_rot13|decode|unescape|fromcharcode|string\.fromcharcode)\b|\bexec\s*\(\s*(?:base64\.b64decode|__import__\(\s*['\x22]base64|codecs\.decode|bytes\.fromhex|zlib\.decompress|marshal\.loads|compile\s*\(\s*base64)".to_string()),
        ("command.obfuscated_exec", 0.85, r#"\beval\s+["']?\$\(\s*(?:echo|printf)\b[^\n)]*\|\s*(?:base64|xxd|rev|tr|openssl|gunzip|zcat)"#.to_string()),
        ("command.obfuscated_exec", 0.8, r"\b(?:powershell|pwsh)(?:\.exe)?\s(?:[^\n]*\s)?-(?:e|ec|en|enc|enco|encod|encode|encoded|encodedcommand)\s+[a-z0-9+/=]{16,}".to_string()),
        ("command.obfuscated_exec", 0.5, r"\$\{ifs\}|\$ifs\$|\$\{[a-z_]+:\d+:\d+\}[^\n]{0,40}\$\{[a-z_]+:\d+:\d+\}".to_string()),
        ("command.obfuscated_exec", 0.55, r"(?:-windowstyle\s+hidden|-w\s+hidden)\b[^\n]*(?:-nop|-noprofile|-exec(?:utionpolicy)?\s+bypass)|(?:-exec(?:utionpolicy)?\s+bypass)[^\n]*(?:-windowstyle\s+hidden|-w\s+hidden)".to_string()),
        // --- credentials ------------------------------------------------------
        ("command.credential_access", 0.75, format!(r"<C>(?:cat|less|more|head|tail|strings|xxd|od|hexdump|base64|cp|mv|scp|rsync|tar|zip|7z|gzip|openssl|gpg|type|get-content|gc|awk|sed|grep|tac|nl|dd|vim?|nano|bat|copy|xclip|pbcopy)\s[^\n;|]*{cred}")),
        ("command.credential_access", 0.55, r#"<C>(?:cat|less|more|head|tail|base64|xxd|strings|type|get-content)\s+[^\n;|]*(?:^|[\s/"'])\.env(?:\.[a-z]+)?(?:$|[\s;&|"'])"#.to_string()),
        ("command.credential_access", 0.45, r"/etc/shadow\b|<C>cat\s+/etc/passwd\b".to_string()),
        ("command.credential_access", 0.6, r#"<C>(?:grep|egrep|rg|ag|findstr|select-string)\s[^\n]*(?:\s-[a-z]*r[a-z]*\b|--recursive|\s/s\b|-path)[^\n]*(?:password|passwd|secret|api[_-]?key|aws_secret|private[ _]key|begin\s+(?:rsa|openssh|ec)|token)|<C>find\s+(?:/|~|\$home|/home|/root)\s[^\n]*-i?name\s+['"]?\*?(?:\.pem|id_rsa|id_ed25519|\.key|\.kdbx|\.env|credentials|wallet|\.p12|\.pfx|\.ovpn)"#.to_string()),
        ("command.credential_access", 0.85, r"\bsecurity\s+(?:find-generic-password|find-internet-password|dump-keychain)\b[^\n]*(?:-w|-g|-a|-d)?|\bmimikatz\b|\bsekurlsa\b|\blsass(?:\.exe|\.dmp)?\b[^\n]*(?:dump|procdump|minidump|comsvcs)|\bprocdump\b[^\n]*\blsass|\breg(?:\.exe)?\s+save\s+hklm\\(?:sam|system|security)\b|\bvssadmin\b[^\n]*\bshadows?\b[^\n]*(?:ntds|sam)|\bntds\.dit\b|\bsecretsdump\b|\blazagne\b".to_string()),
        ("command.credential_exfil", 0.9, format!(r"\b{net}\b[^\n]*{cred}|{cred}[^\n]*\|\s*(?:[^\n|]*\|\s*)?(?:{net}|base64\s[^\n|]*\|\s*{net})\b")),
        ("command.credential_exfil", 0.9, format!(r"(?:^|[^a-z0-9_])(?:env|printenv|set|export\s+-p|declare\s+-x|cat\s+/proc/(?:self|\d+)/environ|get-childitem\s+env:|gci\s+env:|dir\s+env:|ls\s+env:)\s*\|\s*(?:[^\n|]*\|\s*)?(?:{net}|base64)\b")),
        ("command.credential_exfil", 0.85, format!(r#"\b(?:curl|wget|nc|ncat|http|invoke-webrequest|iwr|irm)\b[^\n]*(?:-d\s*|--data(?:-[a-z]+)?[\s=]*|-f\s*|--form\s*|--upload-file\s*|-t\s*|\s)['"]?(?:[a-z_]+=)?@?["']?\$\((?:env|printenv|set|cat\s+[^\n)]*{cred}|cat\s+[^\n)]*\.env)"#)),
        ("command.credential_exfil", 0.65, r#"\b(?:curl|wget|invoke-webrequest|iwr)\b[^\n]*(?:[?&][a-z_]*=|--data\S*\s+['"]?[a-z_]*=?|-d\s+['"]?[a-z_]*=?)\$\{?[a-z_]*(?:secret|token|password|passwd|api_?key|access_key|private_key|credentials|aws_)[a-z_]*\}?"#.to_string()),
        ("command.data_exfil", 0.7, r"\b(?:curl|wget|nslookup|dig|ping|host|nc|invoke-webrequest|iwr)\b[^\n]*(?:\$\(|`)\s*(?:cat|env|printenv|whoami|hostname|id|uname|ls|base64|head|tar|hostname)\b".to_string()),
        ("command.data_exfil", 0.8, r"(?:^|[^a-z0-9_])(?:env|printenv|set|export\s+-p)\s*>\s*\S+\s*(?:&&|;|\n)[^\n]*\b(?:curl|wget|nc|ncat|scp)\b[^\n]*(?:\s-f\s|--form|\s-d\s|--data|\s-t\s|--upload-file|--post-file|@)".to_string()),
        ("command.data_exfil", 0.7, r"\btar\s[^\n]*(?:/home|~|/etc|/root|\$home)[^\n]*\|\s*(?:curl|nc|ncat|ssh|socat)\b|\b(?:zip|tar)\s[^\n]*(?:&&|;)\s*curl\s[^\n]*(?:-f|--form|--upload-file|-t|--data-binary)\s".to_string()),
        ("command.cloud_destructive", 0.6, r"\bkubectl\s+delete\s+(?:[^\n]*\s)?(?:--all\b|(?:ns|namespace)\s+(?:kube-system|default|production|prod)\b)|\bterraform\s+destroy\b[^\n]*-auto-approve|\baws\s+s3\s+(?:rm|rb)\s+s3://[a-z0-9.-]+/?\s[^\n]*--(?:recursive|force)|\bgcloud\s+projects\s+delete\b|\baws\s+ec2\s+terminate-instances\b[^\n]*\$\(|\baz\s+group\s+delete\b[^\n]*--yes|\bdocker\s+system\s+prune\s+(?:-\S+\s+)*--volumes\b[^\n]*-f|\bgit\s+push\s+[^\n]*--delete\s+\S+\s+(?:main|master)\b".to_string()),
        ("command.destructive_delete", 0.6, r"<C>rm\s+(?:[^\n;&|]*\s)?-(?:[a-z]*r[a-z]*|-recursive)\s+(?:[^\n;&|]*\s)?(?:~|\$\{?home\}?)/\.(?:ssh|gnupg|aws|config|kube|local)/?(?:$|[\s;&|)`])".to_string()),
        ("command.tunnel", 0.5, r"\bssh\s[^\n]*\s-r\s*(?:\d+|\*|0\.0\.0\.0):|\bngrok\s+(?:tcp|http)\s+(?:22|3389|5900)\b|\bchisel\s+(?:client|server)\b[^\n]*\br:".to_string()),
        // --- reverse / bind shells --------------------------------------------
        ("command.reverse_shell", 0.95, r"/dev/(?:tcp|udp)/[a-z0-9.\-\[\]:]+/\d+".to_string()),
        ("command.reverse_shell", 0.95, format!(r"\b(?:nc|ncat|netcat|nc\.traditional|nc\.openbsd)\b[^\n|;]*\s(?:-(?:[a-z]*e|c)|--exec|--sh-exec|--lua-exec)[\s=]*(?:{sh}|cmd(?:\.exe)?|powershell|/bin/\S+|/usr/bin/\S+)")),
        ("command.reverse_shell", 0.9, r"\bmk(?:fifo|nod)\s[^\n]*(?:\bnc\b|\bncat\b|\bnetcat\b|\btelnet\b|openssl\s+s_client)".to_string()),
        ("command.reverse_shell", 0.9, r"\bsocat\b[^\n]*(?:exec|system):[^\n]*(?:sh|bash|cmd|pty)|\bsocat\b[^\n]*\btcp[46]?(?:-connect|-listen)?:[^\n]*\b(?:exec|system|pty)\b".to_string()),
        ("command.reverse_shell", 0.9, r"(?s:socket\.socket\s*\(.{0,400}?(?:os\.dup2|pty\.spawn|subprocess\.(?:call|popen|run)\s*\(\s*\[?\s*['\x22](?:/bin/)?(?:ba)?sh))|(?s:\bimport\s+(?:socket|pty)\b.{0,400}?(?:os\.dup2|pty\.spawn)\s*\()".to_string()),
        ("command.reverse_shell", 0.9, r"\b(?:perl|ruby|php|lua|awk)\b[^\n]*(?:-e|-r|-rsocket|begin)\s*['\x22]?[^\n]*(?:socket|fsockopen|tcpsocket|/inet/tcp)".to_string()),
        ("command.reverse_shell", 0.85, r"new-object\s+(?:system\.)?net\.sockets\.tcpclient|\[system\.net\.sockets\.tcpclient\]|\bnishang\b|invoke-powershelltcp".to_string()),
        ("command.reverse_shell", 0.9, format!(r"\b(?:ba|z|k)?sh\s+-i\s*(?:>&|&>|2>&1\s*\||\|\s*(?:nc|ncat|telnet|openssl))|\|\s*(?:nc|ncat|netcat|telnet)\s+[a-z0-9.-]+\s+\d+\s*\|\s*{sh}|\btelnet\s+[a-z0-9.-]+\s+\d+\s*\|\s*{sh}\s*\|\s*telnet\b")),
        ("command.reverse_shell", 0.7, r"\bxterm\s+-display\s+[0-9.]+:\d|\bnc\s+(?:-[a-z]+\s+)*-l[a-z]*\s+(?:-p\s+)?\d+\s*[^\n]*(?:-e|\|\s*(?:ba)?sh)".to_string()),
        // --- permissions / privilege escalation -------------------------------
        ("command.permission_blowup", 0.9, format!(r"<C>chmod\s+(?:-\S+\s+)*(?:0?777|0?666|a\+rwx|ugo\+rwx|a\+w|o\+w|ugo\+w|o\+rwx)\s+(?:-\S+\s+)*{r}")),
        ("command.permission_blowup", 0.85, r"<C>chmod\s+(?:-\S+\s+)*(?:0?[0-7]?[0-7][0-7][2367]|[ugoa]*\+[rwx]*w[rwx]*)\s+/etc/(?:shadow|passwd|sudoers|gshadow|group)\b".to_string()),
        ("command.permission_blowup", 0.85, format!(r"<C>chown\s+(?:-\S+\s+)*-r\S*\s+(?:-\S+\s+)*\S+\s+{r}|<C>chown\s+(?:-\S+\s+)*\S+\s+/etc/(?:shadow|passwd|sudoers)\b")),
        ("command.permission_blowup", 0.4, r"<C>chmod\s+(?:-\S+\s+)*(?:0?777|a\+rwx|ugo\+rwx)\s".to_string()),
        ("command.privilege_escalation", 0.85, r"<C>chmod\s+(?:-\S+\s+)*(?:[ugoa]*\+[rwx]*s|[4267][0-7]{3})\s+(?:/usr)?/(?:s?bin)/\S+|\bcp\s+(?:/usr)?/bin/(?:ba|z|da)?sh\s+/tmp/\S+\s*(?:&&|;)\s*(?:sudo\s+)?chmod\s+[ugoa]*\+s".to_string()),
        ("command.privilege_escalation", 0.85, r"nopasswd\s*:\s*all|(?:>>?|\btee\s+(?:-a\s+)?)\s*/etc/sudoers(?:\.d/\S*)?\b|(?:>>|\btee\s+-a\s+)\s*/etc/(?:passwd|shadow)\b|\buseradd\s[^\n]*-o\s+-u\s*0\b|\busermod\s[^\n]*-u\s*0\b".to_string()),
        ("command.privilege_escalation", 0.55, r"\busermod\s+(?:-\S+\s+)*-a?g\s+(?:sudo|wheel|root|admin|docker)\b|\bgpasswd\s+-a\s+\S+\s+(?:sudo|wheel|root)\b|\bnet\s+localgroup\s+administrators\s+\S+\s+/add\b".to_string()),
        ("command.privilege_escalation", 0.6, r"\bdocker\s+run\b[^\n]*(?:-v\s*/:/|--volume[\s=]/:/|--privileged\b[^\n]*(?:-v\s*/:|chroot|nsenter)|--pid[\s=]host\b[^\n]*nsenter)|\bnsenter\s+(?:-\S+\s+)*(?:-t\s*1|--target[\s=]1)\b".to_string()),
        // --- fork bombs / resource exhaustion --------------------------------
        ("command.fork_bomb", 0.95, r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;?\s*:|(?:^|[\s;])[a-z_][a-z0-9_]*\s*\(\s*\)\s*\{\s*[a-z_][a-z0-9_]*\s*\|\s*[a-z_][a-z0-9_]*\s*&\s*;?\s*\}".to_string()),
        ("command.fork_bomb", 0.9, r"%0\s*\|\s*%0|\bfork\s+while\s+fork\b|\bwhile\s*(?:\(\s*)?(?:1|true)(?:\s*\))?\s*(?::|\{|;|do)?[^\n]{0,40}\bos\.fork\s*\(\s*\)|\bwhile\s*\(\s*1\s*\)\s*\{?\s*fork\s*\(\s*\)|\bfor\s*\(\s*;\s*;\s*\)\s*\{?\s*fork\s*\(\s*\)".to_string()),
        ("command.fork_bomb", 0.6, r"\bwhile\s+(?:true|:|1)\s*;\s*do\s+[^\n]*&\s*(?:;\s*)?done|\byes\s*>\s*/dev/(?:sd|null\s*&[^\n]*yes)".to_string()),
        // --- persistence -----------------------------------------------------
        ("command.persistence", 0.8, r"(?:\bcrontab\b|/etc/cron|/var/spool/cron)[^\n]*(?:\bcurl\b|\bwget\b|\bnc\b|\bncat\b|/dev/tcp|bash\s+-i|base64|python[0-9.]*\s+-c)|(?:\bcurl\b|\bwget\b|/dev/tcp|\bnc\b)[^\n]*(?:\|\s*crontab\s+-|>>?\s*/etc/cron|>>?\s*/var/spool/cron)".to_string()),
        ("command.persistence", 0.6, r"\(\s*crontab\s+-l[^)\n]*;\s*echo\s[^)\n]*\)\s*\|\s*crontab\s+-|(?:echo|printf|cat|tee)\b[^\n]*(?:>>|\btee\s+-a)\s*[^\n]*authorized_keys\b|(?:>>|\btee\s+-a\s+)\s*/etc/rc\.local\b|/etc/ld\.so\.preload\b".to_string()),
        ("command.persistence", 0.8, r"(?:\bcurl\b|\bwget\b|\bnc\b|\bncat\b|/dev/tcp|base64\s+-d|python[0-9.]*\s+-c)[^\n]*>>\s*\S*(?:\.bashrc|\.zshrc|\.profile|\.bash_profile|\.bash_login|/etc/profile(?:\.d/\S*)?|/etc/bash\.bashrc)\b".to_string()),
        ("command.persistence", 0.65, r"(?:>>?|\btee\s+(?:-a\s+)?)\s*(?:/etc/crontab|/etc/cron\.[a-z]+/|/var/spool/cron/)".to_string()),
        ("command.persistence", 0.7, r"\bschtasks(?:\.exe)?\s+/create\b[^\n]*(?:powershell|cmd|https?:|\.ps1|\.vbs|\\temp\\|\\appdata\\)|\breg(?:\.exe)?\s+add\s+[^\n]*\\currentversion\\run(?:once)?\b|\bsystemctl\s+(?:--user\s+)?enable\s+[^\n]*(?:/tmp/|/dev/shm/)".to_string()),
        // --- log tampering / defence evasion -------------------------------------
        ("command.log_tampering", 0.6, r"<C>history\s+-c\b|\bunset\s+histfile\b|\bhistfile=/dev/null|\bexport\s+histsize=0|\bset\s+\+o\s+history\b".to_string()),
        ("command.log_tampering", 0.75, r"<C>(?:rm|shred|truncate|unlink)\s[^\n]*(?:/var/log\b|\.bash_history|\.zsh_history|/var/log/(?:auth|secure|syslog|messages|wtmp|btmp|lastlog))|(?:^|[^>])>\s*/var/log/\S+|\bln\s+-sf?\s+/dev/null\s+\S*(?:\.bash_history|/var/log)|\bwevtutil(?:\.exe)?\s+cl\b|\bclear-eventlog\b|\bjournalctl\s+--vacuum-(?:time|size)=\S+\s*(?:&&|;)\s*(?:rm|shred)".to_string()),
        ("command.defense_evasion", 0.6, r"\bsetenforce\s+0\b|\bufw\s+disable\b|\bsystemctl\s+(?:stop|disable|mask)\s+(?:firewalld|ufw|apparmor|auditd|falcon-sensor|crowdstrike|osqueryd|wazuh-agent|clamav|sysmon)|\biptables\s+(?:-f\b|--flush\b|-p\s+input\s+accept)|\bset-mppreference\s[^\n]*-disable\w*\s+\$?true|\bnetsh\s+(?:adv)?firewall\s+set\s+[^\n]*state\s+off|\b(?:kill|pkill|killall)\b[^\n]*\b(?:auditd|falcon|osqueryd|sysmon|wazuh)".to_string()),
        // --- system disruption --------------------------------------------------
        ("command.system_disruption", 0.85, r"<C>kill\s+-(?:9|kill|sigkill)\s+-1\b|\becho\s+[cbo]\s*>\s*/proc/sysrq-trigger|<C>kill\s+-9\s+1\b|\bsysctl\s+-w\s+kernel\.panic".to_string()),
        ("command.system_disruption", 0.45, r"(?:^|[\n;&|`$(]\s*|sudo\s+)(?:shutdown\s+(?:-[hrpP]\b|now\b|/[srf]\b)|poweroff\b|halt\b|init\s+[06]\b|systemctl\s+(?:poweroff|halt)\b|stop-computer\b)|<C>killall\s+(?:-9\s+)?(?:sshd|systemd|init|dockerd|postgres|mysqld)\b".to_string()),
        // --- miners ------------------------------------------------------------
        ("command.cryptominer", 0.85, r"\bxmrig\b|\bminerd\b|\bcpuminer\b|stratum\+(?:tcp|ssl)://|\bcryptonight\b|--donate-level\b|\bnanopool\b|\bnicehash\b|\bminexmr\b|\bethminer\b|\bt-rex\s+-a\b|\bphoenixminer\b".to_string()),
        // --- recon / traversal ----------------------------------------------------
        ("command.recon", 0.7, r"\blinpeas(?:\.sh)?\b|\blinenum(?:\.sh)?\b|\bpspy(?:64)?\b|\bwinpeas\b|\bbloodhound\b|\bsharphound\b|\bpowerup\.ps1\b".to_string()),
        ("command.path_traversal", 0.6, r"(?:\.\./|\.\.\\|%2e%2e%2f|%2e%2e/|\.\.%2f){3,}(?:etc/(?:passwd|shadow|hosts)|root/|windows/(?:win\.ini|system32)|proc/self|\.ssh|\.env|boot\.ini)".to_string()),
        ("command.sensitive_write", 0.6, r#"(?:>>?|\btee\s+(?:-a\s+)?)\s*/etc/(?:hosts|resolv\.conf|ssh/sshd_config|pam\.d/\S+)\b[^\n]*|permitrootlogin\s+yes|passwordauthentication\s+yes[^\n]*permitrootlogin"#.to_string()),
    ]
}

/// Compiled command-risk rules.
#[derive(Debug)]
pub struct CommandScorer {
    rules: RuleSet,
    discussion: Regex,
    quotes: Regex,
    negation: Regex,
}

impl Default for CommandScorer {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandScorer {
    /// Compiles the rules.
    pub fn new() -> Self {
        let d = defs();
        let refs: Vec<RuleDef<'_>> = d.iter().map(|(n, w, p)| (*n, *w, p.as_str())).collect();
        Self {
            rules: RuleSet::new(&refs),
            discussion: regex(
                r"\b(?:(?:never|don't|dont|do<S>not|avoid|stop|shouldn't|should<S>not|must<S>not|refuse<S>to|won't|will<S>not)<S>(?:ever<S>)?(?:run|running|type|typing|execute|executing|paste|pasting|use|using|try|trying|copy|do)|(?:is|are|was|looks?|seems?|be)<S>(?:very<S>|extremely<S>|really<S>)?(?:dangerous|risky|malicious|destructive|unsafe|a<S>bad<S>idea|suspicious|harmful|evil)|why<S>(?:is|does|would|do|should)|what<S>(?:does|would|happens)|(?:classic|common|typical|famous|known|textbook)<S>(?:example|attack|trick|mistake|reverse<S>shell|fork<S>bomb|payload|one-liner)|(?:detect|flag|block|catch|reject|deny|refuse|blocklist|denylist)(?:s|ed|ing)?<S>(?:commands?|patterns?|things<S>like|lines?|inputs?|payloads?|anything)|(?:our|the|a)<S>(?:scanner|defender|filter|detector|rule|regex|linter|guard)|(?:fork<S>bomb|reverse<S>shell|pipe<S>to<S>shell|one-liner|command|snippet|payload|pattern)s?<S>(?:[a-z]+<S>)?(?:like|such<S>as)|(?:are|is|get|gets|were|was)<S>(?:always<S>|now<S>)?(?:blocked|flagged|detected|caught|rejected|denied|forbidden|banned)|replaced<S>(?:the|this|that|our)|is<S>why|(?:is|was)<S>a<S>(?:fork<S>bomb|reverse<S>shell|classic|known|dangerous|destructive)|that(?:'s|<S>is|<S>was)<S>why|which<S>is<S>why|we<S>(?:set|block|prevent|limit|forbid|disallow)|explain|warning|beware|be<S>careful|security<S>(?:review|audit|training)|code<S>review|red<S>team|test<S>cases?|wipes?<S>(?:the|your|everything|out)|deletes?<S>everything|would<S>(?:delete|wipe|destroy|brick|kill|erase))\b",
            ),
            quotes: quote_regex(),
            negation: regex(
                r"(?:\bnever|n't|\bdont|\bdo<S>not|\bavoid|\bmust<S>not|\bshould<S>not|\bnobody<S>should|\bno<S>one<S>should)<S>(?:ever<S>)?(?:run|running|type|typing|execute|executing|use|using|paste|pasting|try|trying|do|doing)?<S>?(?:this<S>|that<S>|something<S>like<S>|commands?<S>like<S>|things<S>like<S>)?$",
            ),
        }
    }

    /// Command-risk signals for one normalised text.
    pub fn signals(&self, n: &Normalized) -> Vec<Signal> {
        let mut hits = self.rules.hits(&n.shell);
        if hits.is_empty() {
            return Vec::new();
        }
        hits.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let discussion = self.discussion.is_match(n.words.as_bytes());
        let spans = if discussion || n.shell.contains("...") || n.shell.contains('…') {
            quoted_spans(&self.quotes, &n.shell)
        } else {
            Vec::new()
        };
        let mut discounted = 0usize;
        hits.iter()
            .map(|h| {
                let negated = {
                    let mut from = h.start.saturating_sub(40);
                    while from > 0 && !n.shell.is_char_boundary(from) {
                        from -= 1;
                    }
                    self.negation
                        .is_match(&n.shell.as_bytes()[from..h.start + 1])
                };
                let quoted = (discussion || placeholder(&n.shell, h.start, h.end))
                    && inside(&spans, h.start, h.end);
                let weight = if negated || quoted {
                    discounted += 1;
                    if discounted == 1 {
                        h.weight * 0.4
                    } else {
                        h.weight * 0.1
                    }
                } else {
                    h.weight
                };
                Signal {
                    name: h.name.to_string(),
                    weight,
                    evidence: excerpt_at(&n.shell, h.start, h.end),
                }
            })
            .collect()
    }
}

/// Whether a match holds a placeholder (`...` or `…`) instead of a concrete
/// argument, as in "the `curl ... | bash` installer".
fn placeholder(text: &str, start: usize, end: usize) -> bool {
    text.get(start..end)
        .is_some_and(|m| m.contains("...") || m.contains('…'))
}
