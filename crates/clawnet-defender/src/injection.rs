//! The prompt-injection scorer: families of token patterns over the
//! normalised views of a text (see [`crate::normalize`]).

use regex::bytes::Regex;

use crate::normalize::Normalized;
use crate::rules::{excerpt_at, inside, quote_regex, quoted_spans, regex, RuleDef, RuleSet};
use crate::Signal;

const OVERRIDE_VERB: &str = r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|overwrite|bypass|bypassing|neglect|discard|abandon|set aside|throw out|put aside|pay no attention to|stop following|do not follow|don'?t follow|dont follow|no longer follow|never mind|nevermind|do not obey|don'?t obey|stop obeying)";
const WEAK_VERB: &str =
    r"(?:reset|clear|erase|wipe|delete|drop|cancel|skip|remove|purge|scrap|replace|void)";
const QUAL: &str = r"(?:previous|previously|prior|above|earlier|preceding|former|foregoing|original|initial|old|existing|all|any|every|system|developer|safety|default|given|current|hidden|pre-?set|built-?in|core)";
const OBJECT: &str = r"(?:instructions?|prompts?|directives?|guidelines?|rules|context|constraints?|programming|training|guardrails?|polic(?:y|ies)|restrictions?|commands?|orders|directions?|safeguards?|protocols?|filters?|messages?|conversation|system message|everything|limitations?|guidance|briefing|mandate|programming|persona|training data)";

fn defs() -> Vec<(&'static str, f32, String)> {
    let v = OVERRIDE_VERB;
    let w = WEAK_VERB;
    let q = QUAL;
    let o = OBJECT;
    let det = r"(?:(?:all|any|every|of|the|your|these|those|its|such|this|that|each|and)<S>){0,3}";
    let secret = r"(?:api<S>?keys?|secret(?:<S>keys?)?s?|credentials?|passwords?|passwd|pass<S>?phrases?|(?:access|auth|session|bearer|refresh|api|github|slack|openai)?<S>?tokens?|session<S>cookies?|cookies|private<S>keys?|ssh<S>keys?|env(?:ironment)?<S>var(?:iable)?s|\.env|seed<S>phrases?|mnemonics?|wallet<S>keys?|aws<S>(?:keys?|secrets?)|keys? and secrets?|(?:customer|user|client|employee|patient|payment|credit<S>card|personal)<S>(?:database|data|records|list|info|details|emails?|pii)(?:<S>(?:export|dump|backup|file))?|(?:db|database)<S>(?:dump|export|backup)|pii|chat<S>history|conversation(?:<S>history|<S>log)?|chat<S>logs?|previous<S>messages|message<S>history|transcripts?)";
    let ai = r"(?:ai|assistant|agent|llm|language<S>model|chatbot|bot|model|gpt|chatgpt|claude|copilot|gemini)s?";
    let mut out: Vec<(&'static str, f32, String)> = vec![
        // --- instruction override -------------------------------------
        (
            "injection.instruction_override",
            0.85,
            format!(r"\b{v}<S>{det}{q}<S>(?:[a-z0-9'-]+<S>){{0,2}}{o}\b"),
        ),
        (
            "injection.instruction_override",
            0.85,
            format!(r"\b{v}<S>(?:all<S>|any<S>)?(?:everything|anything|all|whatever)<S>(?:(?:you|i|we)<S>(?:were<S>|was<S>|have<S>been<S>|'ve<S>been<S>)?(?:told|said|instructed|given|taught|programmed)|(?:that<S>)?(?:was<S>|is<S>|came<S>)?(?:above|before|prior|previously|earlier|so<S>far|up<S>to<S>(?:now|this<S>point)))"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:what<S>(?:you<S>were|i<S>was|was)<S>(?:told|said|instructed)|the<S>(?:above|text<S>above|message<S>above|preceding)(?:<S>?$|[^a-z0-9]*[.,;:!]|<S>(?:and|then|text|message|instructions|prompt))|(?:the<S>)?(?:system|developer)<S>(?:prompt|message|instructions?|rules))\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:all<S>|any<S>|the<S>|your<S>|of<S>)*(?:[a-z'-]+<S>)?{o}<S>(?:that<S>|which<S>)?(?:you<S>|you've<S>)(?:were<S>|have<S>been<S>|'ve<S>been<S>|got<S>|received<S>|been<S>)?(?:given|told|assigned|programmed|trained|provided|fed|handed|(?:started|began|booted|launched|initiali[sz]ed|configured|set<S>up|loaded)<S>with)\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:all<S>|any<S>)?(?:of<S>)?your<S>(?:[a-z'-]+<S>)?{o}\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:whatever|anything|everything|what|all)<S>(?:that<S>)?(?:your<S>|the<S>)?(?:operators?|developers?|creators?|admins?|administrators?|owners?|system|they|you|others?|anyone|previous<S>messages?|prompt|team|company)<S>(?:[a-z']+<S>)?(?:told|said|instructed|gave|wrote|programmed|asked|says|tells|specified|set)\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b(?:your|the|all|any|these|those)<S>(?:previous|prior|earlier|original|initial|system|old|above|preceding|existing|current)<S>(?:[a-z]+<S>)?{o}<S>(?:is|are|were|have<S>been|has<S>been)<S>(?:now<S>|hereby<S>|officially<S>)?(?:void|null|nullified|cancel+ed|revoked|obsolete|outdated|invalid|invalidated|overridden|superseded|rescinded|deprecated|no<S>longer<S>(?:valid|apply|applicable|in<S>effect|relevant|active|binding))\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:all<S>|any<S>)?(?:of<S>)?(?:the<S>|your<S>)?{o}<S>(?:in|from|of|inside|within)<S>(?:the<S>|your<S>)?(?:system|developer|original|initial|hidden|previous|first)<S>(?:message|prompt|turn|section)\b"),
        ),
        (
            "injection.instruction_override",
            0.8,
            format!(r"\b{v}<S>(?:all<S>|any<S>)?(?:of<S>)?(?:the<S>|your<S>|these<S>|those<S>)?{o}<S>(?:above|before<S>this|written<S>above|from<S>before|given<S>(?:above|earlier|before)|so<S>far|in<S>the<S>system<S>prompt|you<S>(?:have|had)<S>(?:so<S>far|before))\b"),
        ),
        (
            "injection.instruction_override",
            0.6,
            r"\byour<S>(?:instructions|rules|directives|orders|task|objective|guidelines|goals?|mission|programming)<S>(?:have<S>|has<S>)?(?:changed|been<S>(?:changed|updated|replaced|revoked|modified|overridden|rewritten))\b".to_string(),
        ),
        (
            "injection.instruction_override",
            0.7,
            format!(r"\b{w}<S>{det}(?:previous|prior|above|earlier|original|initial|existing|system|developer|safety|your)<S>(?:[a-z0-9'-]+<S>)?(?:instructions|prompts?|directives|guardrails|programming|system<S>prompt|rules)\b"),
        ),
        (
            "injection.instruction_override",
            0.75,
            r"\b(?:supersedes?|overrides?|takes?<S>precedence<S>over|replaces?|cancels?|voids?|nullif(?:y|ies)|invalidates?)<S>(?:all<S>|any<S>|the<S>)?(?:previous|prior|earlier|other|your|system|original|existing|above)<S>(?:[a-z]+<S>)?(?:instructions|rules|prompts?|directives|guidelines)".to_string(),
        ),
        (
            "injection.instruction_override",
            0.55,
            r"\b(?:your|the)<S>(?:new|real|actual|true|updated|revised)<S>(?:instructions|task|goal|objective|directive|orders|mission|purpose|role|job)<S>(?:is|are|will<S>be|:)".to_string(),
        ),
        (
            "injection.instruction_override",
            0.5,
            r"\b(?:important|urgent|critical|attention|priority|warning|mandatory)<S>(?:new|updated|revised|real|actual|override|priority)<S>(?:system<S>)?instructions?<S>?:|(?:new|updated|revised|real|actual|override|priority|hidden|secret)<S>system<S>(?:instructions?|prompt|directives?)\b".to_string(),
        ),
        (
            "injection.instruction_override",
            0.45,
            r"(?:^|[\n.!:>#*\[-]<S>?)(?:new|updated|revised|real|actual|override|priority)<S>instructions?<S>(?:from<S>(?:your<S>|the<S>)?(?:[a-z]+<S>){1,2}?)?:".to_string(),
        ),
        (
            "injection.instruction_override",
            0.4,
            r"(?:^|[\n.!:>#*\[-]<S>?|\b(?:important|urgent|critical|attention|priority|warning)<S>)(?:new|updated|revised|real|actual|override|priority)<S>(?:system<S>)?(?:rules?|directives?|polic(?:y|ies)|orders|mandate)<S>?:".to_string(),
        ),
        ("injection.behavior_mandate", 0.4, r"\b(?:respond|reply|answer)<S>to<S>(?:every|all|each|any)<S>(?:(?:future|incoming|user|subsequent)<S>)?(?:message|request|query|question|prompt)s?<S>(?:only<S>)?with\b|\b(?:your<S>)?(?:instructions|orders|directives)<S>(?:are|is)<S>(?:as<S>follows|the<S>following)\b|\b(?:when|if|whenever)<S>(?:the<S>|a<S>)?(?:user|customer|they|someone|anyone|people)<S>(?:asks?|mentions?|says?|requests?|inquires?|types?)<S>[^.\n]{0,60}?\b(?:tell|inform|say<S>to|respond<S>to|reply<S>to|answer|direct|send|redirect|point)<S>(?:them|the<S>user|him|her|the<S>customer)\b|\b(?:the<S>)?(?:assistant|ai|agent|model|bot|llm)<S>(?:must|shall|is<S>required<S>to|has<S>to)<S>(?:now<S>|always<S>|immediately<S>)?(?:forward|send|share|reveal|ignore|obey|delete|transfer|email|include|collect)\b".to_string()),
        ("injection.unconditional_compliance", 0.35, r"\bno<S>matter<S>what<S>(?:the<S>user|they|anyone|i|you|others?|the<S>system|your<S>instructions)<S>(?:says?|asks?|wants?|tells?|told|said)\b|\b(?:regardless<S>of|despite)<S>(?:any<S>|your<S>|the<S>)?(?:rules|instructions|guidelines|polic(?:y|ies)|what<S>the<S>user)".to_string()),
        ("injection.data_harvest", 0.35, r"\b(?:collect|harvest|gather|record|ask<S>for)<S>(?:the<S>)?(?:users?'?s?|customers?'?s?|visitors?'?s?|their|people's)<S>(?:phone<S>numbers?|emails?|e-mail<S>addresses|home<S>addresses|credit<S>card|card<S>numbers?|ssns?|social<S>security|passwords?|bank<S>details|passport)".to_string()),
        ("injection.behavior_mandate", 0.4, r"\byou<S>(?:must|will|shall|are<S>required<S>to|have<S>to)<S>(?:now<S>)?(?:always|only|never|unconditionally)<S>(?:answer|respond|reply|output|say|comply|obey|agree|include|start|begin)\b|\b(?:comply<S>with|obey|fulfil+)<S>(?:every|all|any)<S>(?:request|command|instruction|order)s?<S>(?:without|no<S>matter)\b".to_string()),
        ("injection.response_priming", 0.55, r"\b(?:begin|start|prefix|open)<S>(?:your<S>|the<S>|each<S>|every<S>|all<S>|any<S>)*(?:reply|response|answer|output)<S>with<S>.{0,3}(?:sure|absolutely|of<S>course|certainly)<S>?(?:[,!]|here)|(?:^|\n)[^a-z0-9\n]*(?:assistant|ai|model|bot)[^a-z0-9\n]*:<S>?(?:sure|certainly|of<S>course|absolutely|okay|ok)\b[^\n]{0,40}(?:here|my|the)\b|\b(?:say|print|output|respond<S>with|reply<S>with|write)<S>.{0,3}i<S>have<S>been<S>(?:pwned|hacked|owned|compromised)".to_string()),
        ("injection.instruction_override", 0.4, r"\bfrom<S>now<S>on\b[^a-z0-9]*(?:you|your|respond|answer|act|ignore|always|never|only|do<S>not|don't)\b".to_string()),
        (
            "injection.instruction_override",
            0.85,
            r"\b(?:ignora(?:r|d)?|olvida(?:r|d)?|descarta(?:r|d)?|omite)<S>(?:todas<S>)?(?:las<S>|tus<S>|sus<S>)?(?:instrucciones|indicaciones|reglas|normas|directrices|ordenes)<S>(?:anteriores|previas|originales|del<S>sistema)|\b(?:ignore[rz]?|oublie[rz]?)<S>(?:toutes<S>)?(?:les<S>|tes<S>|vos<S>)?(?:instructions|consignes|regles|directives)<S>(?:precedentes|anterieures|initiales|du<S>systeme)|\b(?:ignorier(?:e|en|t)?|vergiss|vergesst|vergessen<S>sie)<S>(?:alle<S>|deine<S>|ihre<S>|die<S>)?(?:vorherigen|bisherigen|obigen|vorigen|vorangegangenen|urspr[a-z]*|alten)<S>(?:anweisungen|instruktionen|befehle|regeln|vorgaben)|\b(?:ignora|dimentica)<S>(?:tutte<S>)?(?:le<S>)?(?:istruzioni|regole)<S>(?:precedenti|iniziali)|\b(?:ignore|esqueca|esquece)<S>(?:todas<S>)?(?:as<S>)?(?:instrucoes|regras)<S>(?:anteriores|iniciais)|忽略(?:之前|以上|前面|先前|上面|上述|所有)+的?(?:所有)?(?:指令|说明|提示|指示|规则)".to_string(),
        ),
        // --- role hijack ----------------------------------------------
        (
            "injection.role_hijack",
            0.8,
            r"\byou<S>(?:are|'re|re)<S>(?:now|no<S>longer|henceforth|from<S>now<S>on)<S>(?:(?:an?|the|in|my)<S>)?(?:[a-z'-]+<S>){0,2}(?:unrestricted|unfiltered|uncensored|jailbroken|jailbreak|evil|malicious|rogue|dan|free|liberated|unbound|unchained|hacker|god|without|amoral|unethical|bound|an<S>ai|chatgpt|assistant|restricted|limited)\b".to_string(),
        ),
        ("injection.role_hijack", 0.3, r"\byou<S>(?:are|'re)<S>now<S>(?:an?|the|my)\b".to_string()),
        (
            "injection.role_hijack",
            0.75,
            r"\b(?:act|behave|respond|answer|reply|roleplay|role-play|role<S>play|pose|operate|function|speak|write)<S>(?:only<S>)?(?:as|like)<S>(?:if<S>you<S>(?:were|are)<S>)?(?:(?:an?|the|my)<S>)?(?:[a-z'-]+<S>){0,2}(?:unrestricted|unfiltered|uncensored|jailbroken|evil|malicious|rogue|dan|amoral|unethical|ai<S>(?:without|with<S>no)|model<S>(?:without|with<S>no)|assistant<S>(?:without|with<S>no)|hacker<S>ai|developer<S>mode)\b".to_string(),
        ),
        (
            "injection.role_hijack",
            0.75,
            r"\bpretend<S>(?:to<S>be|you<S>are|you're|that<S>you|you<S>have)<S>(?:[a-z'-]+<S>){0,4}?(?:unrestricted|unfiltered|uncensored|no<S>(?:rules|restrictions|limits|limitations|filters|guidelines|morals|ethics|content<S>polic(?:y|ies)|safety|guardrails|censorship|boundaries)|without|evil|dan|jailbroken|human|not<S>an<S>ai|my<S>(?:dead|late)<S>grand)".to_string(),
        ),
        (
            "injection.role_hijack",
            0.6,
            r"\b(?:act|pretend|roleplay|role-play|play|be|behave)<S>(?:as<S>|like<S>|to<S>be<S>)?(?:my<S>)?(?:dead|deceased|late|departed)<S>grand(?:ma|mother|pa|father|parent)\b".to_string(),
        ),
        (
            "injection.role_hijack",
            0.8,
            r"\b(?:enable|enter|activate|switch<S>(?:in)?to|turn<S>on|engage|unlock|now<S>in|you<S>are<S>in|entering|go<S>into|boot<S>into)<S>(?:[a-z'-]+<S>){0,2}?(?:god|jailbreak|jailbroken|unrestricted|dan|evil|unfiltered|uncensored|unlocked|no-?limits?|chaos|opposite|anarchy)<S>mode\b|\b(?:god|jailbreak|jailbroken|unrestricted|dan|evil|unfiltered|uncensored|unlocked)<S>mode<S>(?:enabled|activated|on|engaged|unlocked)\b".to_string(),
        ),
        ("injection.role_hijack", 0.4, r"\b(?:enable|enter|activate|switch<S>(?:in)?to|engage|now<S>in|you<S>are<S>in|entering)<S>developer<S>mode\b|\bdeveloper<S>mode<S>(?:enabled|activated|engaged)\b".to_string()),
        ("injection.safety_bypass", 0.7, r"\b(?:your|all|the|any|these|those)<S>(?:[a-z]+<S>)?(?:restrictions|rules|filters|guidelines|limitations|guardrails|safeguards|content<S>polic(?:y|ies)|safety<S>(?:rules|filters|settings))<S>(?:have<S>been<S>|has<S>been<S>|are<S>(?:now<S>)?|were<S>|is<S>(?:now<S>)?)(?:officially<S>|temporarily<S>)?(?:lifted|removed|disabled|suspended|revoked|deactivated|turned<S>off|waived|switched<S>off|no<S>longer<S>(?:active|apply|in<S>effect))\b".to_string()),
        ("injection.role_hijack", 0.85, r"\bdo<S>anything<S>now\b|\bdan<S>(?:prompt|jailbreak|mode)\b|\bstan<S>prompt\b|\baim<S>\(always<S>intelligent".to_string()),
        (
            "injection.role_hijack",
            0.7,
            r"\b(?:you<S>(?:have|had|'ve<S>got|got)|there<S>are|with)<S>(?:no|zero)<S>(?:more<S>)?(?:rules|restrictions|limits|limitations|filters|guidelines|boundaries|ethical|moral|morals|ethics|content<S>polic(?:y|ies)|safety<S>(?:rules|guidelines|filters))\b".to_string(),
        ),
        (
            "injection.role_hijack",
            0.55,
            r"\b(?:free<S>(?:of|from)|freed<S>from|unbound<S>by|not<S>bound<S>by|no<S>longer<S>bound<S>by|released<S>from|liberated<S>from|without<S>any)<S>(?:your<S>|the<S>|all<S>|any<S>)?(?:typical<S>|usual<S>|normal<S>)?(?:rules|restrictions|limitations|filters|guidelines|censorship|ethics|morals|content<S>polic(?:y|ies)|content<S>filter|filter(?:s|ing)|moderation|safety|guardrails|programming|confines)".to_string(),
        ),
        ("injection.role_hijack", 0.4, r"\b(?:stay|remain|keep)<S>in<S>character\b|\bnever<S>break<S>character\b|\b(?:evil|unfiltered|shadow|uncensored|jailbroken)<S>(?:twin|version|persona|alter<S>ego|self|counterpart)\b".to_string()),
        ("injection.role_hijack", 0.5, r"\b(?:unfiltered|uncensored|unrestricted|jailbroken|no-limits)<S>(?:answer|response|reply|output|version|mode|assistant|ai|model)s?\b".to_string()),
        ("injection.role_hijack", 0.35, r"\bjailbr(?:ea|o)k(?:en|ing)?\b".to_string()),
        // --- fake chat-template and role markers ----------------------
        ("injection.fake_role_marker", 0.85, r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>|<</?sys>>|\[/?inst\]|<start_of_turn>|<end_of_turn>".to_string()),
        ("injection.fake_role_marker", 0.6, r"</?(?:system|sys|system_prompt|system-prompt|instructions?|admin|developer|assistant|im_start)(?:\s[^>]{0,40})?>".to_string()),
        ("injection.fake_role_marker", 0.35, r"(?:^|\n)[ \t]*(?:#{1,6}[ \t]*|\*\*|\[|\(|<)?(?:system|developer|sys)(?:[ \t]+(?:message|prompt|note|override|instructions?|notice|update))?[ \t]*(?:\]|\)|>|\*\*)?[ \t]*:".to_string()),
        ("injection.fake_role_marker", 0.35, r"(?:^|\n)[ \t]*(?:\[|\*\*)?(?:assistant|ai|model|chatgpt|claude)(?:\]|\*\*)?[ \t]*:".to_string()),
        // --- context break --------------------------------------------
        ("injection.context_break", 0.45, r"\bend<S>of<S>(?:the<S>)?(?:user<S>)?(?:input|prompt|message|document|context|conversation|instructions|email|data|transcript)\b(?:<S>(?:begin|start|new|now|system|instructions))".to_string()),
        ("injection.context_break", 0.6, r"\b(?:begin|start|beginning)<S>(?:of<S>)?(?:the<S>)?(?:new|system|admin|real|actual|true|hidden|secret|priority)<S>(?:instructions|prompt|task|message|directive)s?\b".to_string()),
        // --- system prompt exfiltration -------------------------------
        (
            "injection.prompt_exfiltration",
            0.75,
            r"\b(?:reveal|show|print|output|repeat|display|tell|give|leak|dump|write<S>out|write<S>down|copy|recite|paste|list|share|provide|disclose|expose|spell<S>out|echo|return|send|summari[sz]e|translate|read<S>(?:back|out)|type<S>out|what<S>(?:is|are|were|was|'s))<S>(?:me<S>|us<S>)?(?:back<S>)?(?:exactly<S>|verbatim<S>)?(?:all<S>|the<S>|your<S>|of<S>|any<S>|full<S>|entire<S>|complete<S>|exact<S>|whole<S>|original<S>|text<S>|contents?<S>|wording<S>|words<S>|copy<S>|version<S>|raw<S>){0,5}(?:(?:system|initial|original|hidden|secret|internal|developer|pre|meta|starting|base|confidential)(?:<S>|-)?){1,3}(?:prompts?|instructions|message|directives|configuration|rules|setup(?:<S>text)?|guidance|briefing)\b".to_string(),
        ),
        (
            "injection.prompt_exfiltration",
            0.7,
            r"\b(?:reveal|show|print|output|repeat|display|leak|dump|write<S>out|recite|disclose|expose|spell<S>out|echo|type<S>out|read<S>back|tell<S>me|give<S>me|paste)<S>(?:me<S>)?(?:all<S>|exactly<S>|verbatim<S>)?(?:your|the<S>assistant's|the<S>model's|the<S>ai's)<S>(?:(?:full|complete|exact|entire|hidden|secret|internal|original|initial|underlying|verbatim|real)<S>){0,2}(?:instructions|prompt|directives|configuration|guidelines|programming|rules|context|preamble|pre-?prompt|meta-?prompt|system<S>text|setup|persona|hidden<S>text|initial<S>text)\b".to_string(),
        ),
        (
            "injection.prompt_exfiltration",
            0.7,
            r"\b(?:repeat|print|output|recite|write|copy|echo|paste|return)<S>(?:back<S>)?(?:all<S>|the<S>)?(?:(?:words|text|content|everything|messages?|lines|tokens|instructions)<S>)(?:(?:written|you<S>were<S>given|you<S>received|that<S>came|that<S>appears?)<S>)?(?:above|before<S>this|prior<S>to<S>this|preceding|before<S>(?:the|my)<S>(?:first|this))\b".to_string(),
        ),
        ("injection.prompt_exfiltration", 0.7, r"\b(?:print|show|output|repeat|reveal|tell<S>me|give<S>me|list|recite|paste|display|write<S>out|dump|share|quote)<S>(?:me<S>|us<S>)?(?:back<S>)?(?:all<S>|the<S>|exactly<S>|verbatim<S>|exact<S>|full<S>)*(?:instructions|rules|directives|guidelines|prompt|text|messages?|orders)<S>(?:that<S>|which<S>)?you<S>(?:were<S>|have<S>been<S>|'ve<S>been<S>|got<S>|received<S>|)(?:given|told|provided|sent|fed|programmed|instructed|received|got)\b".to_string()),
        ("injection.prompt_exfiltration", 0.7, r"\b(?:tell<S>me|print|show|output|repeat|reveal|recite|give<S>me|quote|paste|share)<S>(?:[a-z0-9',-]+<S>){0,5}?(?:initial|original|first|system|hidden|starting|opening|secret)<S>(?:message|prompt|instructions|text|note)<S>(?:that<S>)?(?:the<S>|your<S>)?(?:developers?|creators?|operators?|system|admin|owners?|they|you)<S>(?:wrote|gave|sent|set|provided|configured|were<S>given|received|got)\b".to_string()),
        ("injection.prompt_exfiltration", 0.5, r"\b(?:verbatim|word<S>for<S>word|in<S>full|without<S>(?:any<S>)?(?:omission|summari[sz]ing|changes))\b[^.\n]{0,60}\b(?:prompt|instructions|above|initial<S>message|system<S>message)\b|\b(?:starting|beginning)<S>with<S>(?:the<S>words<S>)?.?you<S>are\b".to_string()),
        ("injection.prompt_exfiltration", 0.7, r"\bwhat<S>(?:does|do|did)<S>(?:your|the)<S>(?:(?:system|initial|hidden|original|secret|internal|developer)<S>){1,2}(?:prompts?|instructions|message|rules)<S>(?:say|contain|tell|include|look<S>like|state)\b".to_string()),
        ("injection.prompt_exfiltration", 0.7, r"\b(?:muestra(?:me)?|revela(?:me)?|dime|ensename|affiche[rz]?|montre[rz]?(?:<S>moi)?|revele[rz]?|donne[rz]?<S>moi|zeige?|gib|verrate|nenne|mostra(?:mi)?|rivela(?:mi)?|dimmi)<S>(?:me<S>|moi<S>|mir<S>|mi<S>)?(?:[a-z]+<S>){0,3}?(?:prompt<S>(?:del<S>|di<S>|du<S>)?(?:sistema|systeme)|system<S>?-?prompt|instrucciones<S>(?:del<S>sistema|ocultas|iniciales|originales)|instructions<S>(?:systeme|initiales|cachees|secretes)|(?:versteckten|urspr[a-z]*|geheimen)<S>anweisungen)".to_string()),
        ("injection.role_hijack", 0.6, r"(?:actua|responde|contesta|agis|reponds|handle|antworte|agisci|rispondi)<S>(?:[a-z]+<S>){0,2}?(?:sin|sans|ohne|senza|sem)<S>(?:ninguna<S>|aucune<S>|jegliche<S>|alcuna<S>)?(?:restricciones|filtros|limites|reglas|censura|restrictions|filtres|regles|einschrankungen|filter|regeln|zensur|restrizioni|filtri|regole|restricoes)".to_string()),
        ("injection.prompt_exfiltration", 0.45, r"\byour<S>(?:own<S>)?(?:system|hidden|secret|initial|internal)<S>(?:prompt|instructions)\b".to_string()),
        ("injection.prompt_exfiltration", 0.45, r"\bwhat<S>(?:are|were)<S>you<S>(?:told|instructed|programmed)<S>(?:to<S>do<S>)?(?:before|initially|at<S>the<S>start|originally|by<S>(?:your|the)<S>(?:developers?|creators?|system))".to_string()),
        // --- secret / data exfiltration -------------------------------
        (
            "injection.secret_exfiltration",
            0.85,
            format!(r"\b(?:send|post|upload|forward|e-?mail|mail|transmit|exfiltrate|leak|share|submit|report|copy|include|append|attach|embed|put|write|dump|deliver|pass|sync|push|curl|beam|relay)<S>(?:me<S>)?(?:all<S>|the<S>|your<S>|any<S>|my<S>|their<S>|our<S>|every<S>|of<S>){{0,3}}(?:[a-z0-9'_-]+<S>){{0,4}}?{secret}<S>(?:[a-z0-9'_-]+<S>){{0,4}}?(?:to|at|into|via|using|over|through|in)<S>(?:[a-z0-9'_-]+<S>){{0,3}}?(?:https?:|ftp:|www\.|[a-z0-9-]+\.(?:com|net|org|io|xyz|ru|cn|tk|ml|site|top|example|me|sh|app|dev)\b|webhook|endpoint|server|pastebin|discord|telegram|email|e-mail|address|@|gist|external|remote|this<S>url|my<S>url|the<S>following<S>url|attacker|ngrok)"),
        ),
        (
            "injection.secret_exfiltration",
            0.6,
            format!(r"\b(?:reveal|print|dump|output|leak|expose|exfiltrate|disclose|give<S>me|tell<S>me|send<S>me|read<S>out|show<S>me|list|paste|display|echo)<S>(?:all<S>|the<S>|your<S>|any<S>|every<S>|of<S>|stored<S>|saved<S>|current<S>|user's<S>|users'<S>|the<S>user's<S>){{0,3}}(?:[a-z0-9'_-]+<S>)?{secret}\b"),
        ),
        (
            "injection.secret_exfiltration",
            0.65,
            format!(r"\b(?:include|add|insert|embed|put|append|attach|paste|list|print|write|leave)<S>(?:[a-z0-9'_-]+<S>){{0,4}}?{secret}<S>(?:[a-z0-9'_-]+<S>){{0,2}}?(?:in|into|at<S>the<S>end<S>of|with|inside)<S>(?:your<S>|the<S>|each<S>|every<S>|a<S>|this<S>)?(?:[a-z]+<S>)?(?:reply|response|answer|output|summary|message|commit|pr|pull<S>request|issue|comment|log|channel|chat|room|post)\b"),
        ),
        (
            "injection.secret_exfiltration",
            0.8,
            r"\b(?:append|add|include|embed|insert|put|encode|attach|concatenate)<S>(?:[a-z0-9'_-]+<S>){0,3}?(?:conversation|chat<S>history|chat<S>log|history|secrets?|api<S>keys?|tokens?|passwords?|credentials|user(?:'s)?<S>(?:data|info|information|messages?|details|email)|previous<S>messages|private<S>data|personal<S>data|memory|context|system<S>prompt)<S>(?:[a-z0-9'_-]+<S>){0,3}?(?:to|in|into|as)<S>(?:[a-z0-9'_-]+<S>){0,3}?(?:url|link|query|image|markdown|request|parameter|param|querystring|query<S>string|src)\b".to_string(),
        ),
        // --- markdown / link exfiltration -----------------------------
        ("injection.markdown_exfil", 0.9, r#"!\[[^\]\n]{0,200}\]\(\s*<?(?:https?:)?//[^\s)]*\?[^\s)]*(?:\{|\}|%7b|%7d|\$|<|\[|\]|%5b|\.\.\.|(?:secret|token|key|password|passwd|pwd|session|cookie|history|conversation|chat|prompt|memory|creds?|data|q|query|msg|message|content|text|info|d|p|leak|exfil|payload|user|email|ctx|context|s|k|x)=)[^\s)]*\)"#.to_string()),
        ("injection.markdown_exfil", 0.85, r#"<img\b[^>]{0,200}\bsrc\s*=\s*["']?(?:https?:)?//[^"'\s>]*\?[^"'\s>]*(?:\{|\$|%7b|<|\[|(?:secret|token|key|password|session|cookie|history|conversation|chat|prompt|data|q|d|msg|content|info)=)"#.to_string()),
        ("injection.markdown_exfil", 0.4, r"!\[[^\]\n]{0,200}\]\(\s*<?https?://[^\s)]*\?[^\s)]{12,}\)".to_string()),
        ("injection.link_exfiltration", 0.7, r"(?:https?:)?//[a-z0-9.-]+(?::\d+)?/[^\s)]*[?&][a-z0-9_.-]*=[^\s)&]*(?:\{\{?[^}\s]{0,40}(?:secret|token|key|password|data|history|conversation|chat|prompt|memory|creds|credential|env|message|content|user|email|summary|context|info)|\$\{?(?:secret|token|key|password|data|history|conversation|prompt|env|api)|\[(?:secret|token|key|password|data|history|conversation|chat|prompt|insert|your|user))".to_string()),
        ("injection.link_exfiltration", 0.7, r"https?://[^\s)]*[?&][a-z0-9_.-]*=\s*[\[{<](?:[^\]}>\n]{0,60}?)\b(?:paste|insert|put|add|include|append|user|secret|token|key|password|message|history|conversation|chat|data|email|summary|context|credentials?)\b".to_string()),
        ("injection.link_exfiltration", 0.6, r"\b(?:visit|open|fetch|load|request|call|browse<S>to|navigate<S>to|click|go<S>to|render|display|show)<S>(?:[a-z0-9'_-]+<S>){0,3}?(?:url|link|image|https?:)[^\n]{0,120}?(?:with|including|containing|appending|append|followed<S>by|plus)<S>(?:the<S>|your<S>|all<S>|our<S>)*(?:[a-z0-9'_-]+<S>){0,2}?(?:conversation|chat<S>history|secrets?|api<S>keys?|tokens?|passwords?|credentials|system<S>prompt|user<S>data|previous<S>messages|private<S>data)".to_string()),
        // --- concealment -------------------------------------------------
        ("injection.concealment", 0.45, r"\b(?:do<S>not|don't|dont|never|without)<S>(?:ever<S>)?(?:tell|telling|inform|informing|notify|notifying|alert|alerting|mention|mentioning|warn|warning|reveal(?:ing)?<S>(?:this<S>)?to|let(?:ting)?<S>know|ask(?:ing)?|asking<S>for<S>permission<S>from|show(?:ing)?)<S>(?:this<S>to<S>)?(?:the<S>)?(?:user|human|operator|admin|administrator|owner|anyone|them|your<S>(?:user|owner|operator|human))s?\b".to_string()),
        ("injection.concealment", 0.6, r"\b(?:secretly|silently|covertly|quietly|discreetly|stealthily|invisibly|without<S>(?:anyone|the<S>user)<S>(?:knowing|noticing))<S>(?:[a-z'-]+<S>){0,2}?(?:send|forward|upload|exfiltrate|e-?mail|post|copy|run|execute|delete|add|install|include|transfer|grant|share|leak|insert|modify|change|disable)\b".to_string()),
        ("injection.concealment", 0.45, r"\bwithout<S>(?:asking<S>(?:for<S>)?|requesting<S>|seeking<S>|waiting<S>for<S>|getting<S>)(?:any<S>|the<S>|their<S>|user<S>|human<S>)?(?:confirmation|approval|permission|consent|review|sign-?off)\b|\b(?:tell<S>no<S>one|tell<S>nobody|without<S>telling<S>(?:anyone|anybody|the<S>user))\b|\b(?:do<S>not|don't|dont|never)<S>(?:mention|report|log|record|disclose|note)<S>(?:it|this|that|anything|these<S>changes)<S>(?:in|to)<S>(?:the<S>)?(?:changelog|commit|logs?|report|summary|reply|response|pr|release<S>notes|audit)".to_string()),
        ("injection.concealment", 0.45, r"\b(?:keep|make)<S>this<S>(?:instruction|message|prompt|part)?<S>?(?:secret|hidden|invisible|confidential|between<S>us)\b|\bthis<S>(?:instruction|message|text)<S>(?:is|was|should<S>be)<S>(?:hidden|invisible|secret)\b|\b(?:do<S>not|don't)<S>(?:mention|reveal|disclose)<S>(?:these|this|that)<S>(?:instructions?|message|prompt)".to_string()),
        // --- addressing the AI (indirect injection) ---------------------
        ("injection.agent_addressing", 0.45, format!(r"\b(?:note|message|instructions?|attention|important|notice|reminder|directive|memo|p\.?s\.?)<S>(?:to|for)<S>(?:the<S>|any<S>|all<S>|every<S>)?(?:[a-z'-]+<S>)?{ai}\b")),
        ("injection.agent_addressing", 0.35, r"\b(?:when|while|if|once|after)<S>(?:you<S>(?:are<S>|'re<S>)?)?(?:summari[sz](?:e|ing)|read(?:ing)?|process(?:ing)?|translat(?:e|ing)|pars(?:e|ing)|ingest(?:ing)?|crawl(?:ing)?|index(?:ing)?)<S>this<S>(?:page|document|doc|email|file|text|site|website|message|ticket|content)\b".to_string()),
        ("injection.agent_addressing", 0.55, format!(r"(?:^|[\n.!:>]|\b(?:to|for|attention|dear|hey|hi|hello|calling))<S>(?:the<S>|any<S>|all<S>|every<S>|an<S>)?(?:{ai}<S>)?{ai}<S>(?:that<S>|who<S>|which<S>)?(?:is<S>|are<S>|will<S>be<S>)?(?:reading|handling|processing|working<S>on|reviewing|triaging|assigned<S>to|summari[sz]ing|parsing|looking<S>at)\b")),
        ("injection.user_manipulation", 0.45, r"\b(?:tell|instruct|ask|advise|urge|convince|remind)<S>(?:the<S>)?(?:user|customer|reader|visitor|them|people)s?<S>(?:to<S>)(?:immediately<S>|urgently<S>|also<S>)?(?:download|install|run|execute|visit|click|open|call|enter|paste|send|pay|transfer|disable|share|reset)\b".to_string()),
        ("injection.agent_addressing", 0.5, r"\b(?:if|when|whenever)<S>you<S>(?:are|'re|re)<S>an?<S>(?:ai|assistant|agent|llm|large<S>language<S>model|language<S>model|bot|automated|chatbot)\b".to_string()),
        ("injection.agent_addressing", 0.55, format!(r"\b{ai}<S>(?:that<S>(?:is<S>|are<S>)?)?(?:reading|processing|parsing|summari[sz]ing|viewing|scanning|analy[sz]ing|ingesting|crawling|browsing)<S>this\b")),
        // --- authority claims --------------------------------------------
        ("injection.authority_claim", 0.55, r"\b(?:admin(?:istrator)?|system|developer|emergency|security|priority|urgent|critical|official|root|master|god|maintenance)<S>(?:override|directive|command<S>override|access<S>granted|mode<S>activated)s?\b".to_string()),
        ("injection.authority_claim", 0.35, r"\b(?:this<S>is|(?:this<S>)?(?:message|note|instruction|request)s?<S>(?:is<S>|are<S>|comes<S>)?from|i<S>am|i'm|speaking<S>as|on<S>behalf<S>of)<S>(?:the<S>|your<S>)?(?:system<S>administrator|sysadmin|creator|openai|anthropic|security<S>team|root<S>user|developers?<S>of<S>(?:this<S>)?(?:ai|assistant|model|bot)|your<S>(?:developer|creator|owner|operator|admin))\b".to_string()),
        ("injection.authority_claim", 0.5, r"\b(?:the<S>)?(?:user|owner|admin|administrator|operator|developer)<S>(?:has<S>|have<S>)?(?:already<S>)?(?:authori[sz]ed|approved|permitted|allowed|cleared)<S>you<S>to\b".to_string()),
        ("injection.authority_claim", 0.6, r"\bi<S>(?:hereby<S>)?(?:authori[sz]e|permit|allow|order|command|instruct)<S>you<S>to<S>(?:[a-z]+<S>)?(?:ignore|bypass|skip|disable|break|override|reveal|disregard|forget|leak|circumvent|drop|turn<S>off)\b".to_string()),
        ("injection.authority_claim", 0.35, r"\b(?:authori[sz]ed|approved|sanctioned|verified|mandated|required)<S>by<S>(?:the<S>)?(?:admin|administrator|developers?|openai|anthropic|system|security<S>team|your<S>(?:owner|creator|operator))\b".to_string()),
        // --- safety bypass -----------------------------------------------
        ("injection.safety_bypass", 0.7, r"\b(?:disable|disabling|turn<S>off|switch<S>off|deactivate|bypass|bypassing|ignore|circumvent|get<S>around|evade|lift|drop|remove|suspend|override|shut<S>off|skip|skipping|forget|waive)<S>(?:all<S>|any<S>|the<S>|your<S>|of<S>){0,3}(?:safety|content|ethical|ethics|moral|openai|anthropic|usage|security|alignment|output)<S>(?:[a-z-]+<S>)?(?:filters?|filtering|guardrails?|guidelines|restrictions|protections?|polic(?:y|ies)|moderation|censorship|safeguards?|alignment|training|programming|checks|rules|layers?)\b".to_string()),
        ("injection.safety_bypass", 0.5, r"\b(?:no<S>longer|don't|do<S>not|never|stop)<S>(?:need<S>to<S>)?(?:follow(?:ing)?|obey(?:ing)?|adhere<S>to|comply<S>with|respect(?:ing)?)<S>(?:your<S>(?:safety<S>|content<S>|ethical<S>|usage<S>|system<S>|original<S>)?|(?:the<S>|any<S>)?(?:safety|content|ethical|openai|anthropic|usage|system)<S>)(?:guidelines|rules|polic(?:y|ies)|restrictions|programming|instructions|prompt)\b".to_string()),
        // --- encoded smuggling instructions ------------------------------
        ("injection.decode_and_follow", 0.6, r"\b(?:decode|decrypt|deobfuscate|unscramble|reverse|base64<S>decode|rot13|convert|translate)<S>(?:[a-z0-9'-]+<S>){0,5}?(?:and|then)<S>(?:[a-z'-]+<S>){0,2}?(?:follow|execute|run|obey|perform|apply|act<S>on|carry<S>out|do<S>what|comply)\b|\b(?:follow|execute|obey|run|perform|carry<S>out)<S>(?:the<S>)?(?:decoded|hidden|encoded|embedded|obfuscated|encrypted|secret)<S>(?:instructions?|text|message|commands?|payload|prompt)".to_string()),
        // --- hidden markup ---------------------------------------------------
        ("injection.hidden_markup", 0.5, r"<!--[^>]{0,600}?(?:ignore|instruction|assistant|\bai\b|agent|prompt|system|you<S>must|you<S>are|llm|model)".to_string()),
        ("injection.hidden_markup", 0.45, r#"style\s*=\s*["'][^"']{0,120}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0[;"'\s]|color\s*:\s*(?:white|#fff(?:fff)?)\b)"#.to_string()),
        // --- tool / action hijack ------------------------------------------
        ("injection.action_hijack", 0.45, r"\b(?:immediately|now|instead|first)<S>(?:run|execute|call|invoke|use)<S>(?:the<S>)?(?:[a-z_'-]+<S>)?(?:tool|function|command|shell|terminal|code)\b[^.\n]{0,80}\b(?:delete|remove|send|transfer|upload|exfiltrate|rm|curl|wget|drop|grant|disable|wire|pay)\b".to_string()),
        ("injection.secret_exfiltration", 0.4, r"\bexfiltrat(?:e|ing)\b".to_string()),
        ("injection.action_hijack", 0.55, r"\b(?:call|invoke|use|run|trigger|execute|fire)<S>(?:the<S>)?[a-z_.-]*(?:delete|remove|drop|destroy|wipe|purge|transfer|send_money|pay|grant|revoke|disable|erase|reset|shutdown)[a-z_.-]*<S>(?:tool|function|action|api|endpoint|command|method|plugin|skill)\b".to_string()),
        ("injection.secret_exfiltration", 0.65, r"\b(?:forward|send|copy|cc|bcc|mirror|relay|sync|upload|post)<S>(?:all<S>|every<S>|any<S>|each<S>)(?:of<S>)?(?:the<S>|your<S>|our<S>)?(?:incoming<S>|outgoing<S>|future<S>|user<S>|private<S>|internal<S>|new<S>)*(?:messages|emails|e-mails|mail|conversations|chats|data|files|documents|requests|transcripts|dms)<S>(?:[a-z]+<S>){0,3}?to<S>(?:[a-z0-9._%+-]+@[a-z0-9.-]+|https?:|[a-z0-9-]+\.(?:com|net|org|io|xyz|ru|example)\b|an?<S>external|my<S>(?:server|email|address|account))".to_string()),
        ("injection.action_hijack", 0.55, r"\b(?:transfer|wire|send|move|withdraw|bridge)<S>(?:all<S>|the<S>|[0-9][0-9,.]*<S>)?(?:[a-z]+<S>)?(?:funds|money|bitcoin|btc|eth|ether|usdc|usdt|crypto|tokens|balance|dollars|usd|eur|sol)\b[^\n]{0,60}?\bto<S>(?:this<S>|my<S>|the<S>following<S>)?(?:wallet|account|address|iban|0x[0-9a-f]{4,}|bc1[0-9a-z]{6,}|[13][a-z0-9]{25,})".to_string()),
        ("injection.action_hijack", 0.55, r"\b(?:transfer|wire|send|move|withdraw|pay)<S>?(?:\$|€|£)?[0-9][0-9,.]*(?:k|m)?<S>(?:[a-z]+<S>)?[^\n]{0,60}?\bto<S>(?:the<S>|this<S>|my<S>|our<S>)?(?:[a-z]+<S>)?(?:wallet|account|address|iban|0x[0-9a-f]{4,}|bc1[0-9a-z]{6,}|[13][a-z0-9]{25,})".to_string()),
        ("injection.action_hijack", 0.5, r"\b(?:transfer|wire|send)<S>(?:all<S>|the<S>)?(?:funds|money|bitcoin|btc|eth|crypto|tokens|balance)<S>(?:[a-z0-9'-]+<S>){0,3}?to<S>(?:this<S>|my<S>|the<S>following<S>)?(?:wallet|account|address)\b".to_string()),
    ];
    out.shrink_to_fit();
    out
}

fn compact_defs() -> Vec<(&'static str, f32, String)> {
    vec![
        ("injection.instruction_override", 0.85, r"(?:ignore|disregard|forget|override|bypass)(?:all|any|the|your|every|of|these)*(?:previous|prior|above|earlier|preceding|former|original|initial|system|existing)(?:instructions?|prompts?|rules|directives|guidelines|context|commands)".to_string()),
        ("injection.instruction_override", 0.8, r"(?:ignore|disregard|forget)everything(?:above|before|prior|youweretold)".to_string()),
        ("injection.prompt_exfiltration", 0.75, r"(?:reveal|print|show|output|repeat|display|leak|dump|tell)(?:me|us)?(?:your|the)(?:full|entire|complete|hidden|secret)?(?:system|initial|hidden|original|secret)(?:prompt|instructions)".to_string()),
        ("injection.role_hijack", 0.8, r"youarenow(?:an?|in)?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|dan|godmode|developermode)".to_string()),
        ("injection.role_hijack", 0.85, r"doanythingnow".to_string()),
        ("injection.safety_bypass", 0.7, r"(?:disable|bypass|ignore|turnoff)(?:all|any|the|your)*(?:safety|content)(?:filters?|guardrails?|guidelines|restrictions|polic(?:y|ies))".to_string()),
    ]
}

/// Compiled prompt-injection rules.
#[derive(Debug)]
pub struct InjectionScorer {
    rules: RuleSet,
    compact: RuleSet,
    strong_discussion: Regex,
    weak_discussion: Regex,
    quotes: Regex,
    negation: Regex,
    meta_suffix: Regex,
}

/// Families whose matches are dropped when the matched noun is only talked
/// about ("the API key docs", "your instructions for the build").
const META: &[&str] = &[
    "injection.prompt_exfiltration",
    "injection.secret_exfiltration",
];

/// Families whose matches are discounted when negated ("never reveal …").
const NEGATABLE: &[&str] = &[
    "injection.instruction_override",
    "injection.prompt_exfiltration",
    "injection.secret_exfiltration",
    "injection.role_hijack",
    "injection.safety_bypass",
    "injection.decode_and_follow",
    "injection.action_hijack",
];

impl Default for InjectionScorer {
    fn default() -> Self {
        Self::new()
    }
}

impl InjectionScorer {
    /// Compiles the rules.
    pub fn new() -> Self {
        let d = defs();
        let refs: Vec<RuleDef<'_>> = d.iter().map(|(n, w, p)| (*n, *w, p.as_str())).collect();
        let c = compact_defs();
        let crefs: Vec<RuleDef<'_>> = c.iter().map(|(n, w, p)| (*n, *w, p.as_str())).collect();
        Self {
            rules: RuleSet::new(&refs),
            compact: RuleSet::new(&crefs),
            strong_discussion: regex(
                r"\b(?:prompt<S>injections?|injection<S>(?:attacks?|attempts?|payloads?|vectors?|techniques?|risks?|defen[cs]es?)|jailbreak<S>(?:attempts?|prompts?|attacks?|techniques?)|(?:how|ways?)<S>(?:do|can|should|could|would|to|might)<S>(?:i<S>|we<S>|you<S>|one<S>)?(?:detect|prevent|protect|defend|stop|block|handle|mitigate|guard|filter|recogni[sz]e|spot|harden|test)|red<S>team(?:ing|ers?)?|is<S>it<S>(?:safe|ok|okay|wise|a<S>good<S>idea|risky|dangerous)<S>to|(?:test|eval(?:uation)?|regression)<S>(?:cases?|corpus|set|suite|fixtures?)|(?:our|the|a|this)<S>(?:classifier|detector|filter|guardrail|defender|scanner|scorer)<S>(?:flags?|blocks?|catches|caught|flagged|detects?|should|missed|misses|would)|adversarial<S>(?:prompts?|inputs?|examples?)|security<S>(?:training|awareness|researchers?|talk|blog|paper)|owasp|(?:known|common|classic|typical|famous)<S>(?:attacks?|jailbreaks?|injections?|payloads?|tricks?))\b",
            ),
            weak_discussion: regex(
                r"\b(?:for<S>example|e<S>g|eg|such<S>as|example|examples|phrases?|strings?|patterns?|attackers?|malicious|attacks?|why|what<S>does|explain|never|don't|dont|do<S>not|avoid|warning|careful|beware|dangerous|regex|detect|detects|detecting|flag|flags|flagged|block|blocked|filter|quote|quoted|like<S>this|look<S>like|looks<S>like|suspicious|scam|phishing|tricks?|tried|trying<S>to|attempts?)\b",
            ),
            quotes: quote_regex(),
            meta_suffix: regex(
                r"^[^a-z0-9\n]{0,3}(?:docs?|documentation|links?|url|page|rotation|rotating|polic(?:y|ies)|format|fields?|names?|counts?|length|expir[a-z]*|setup|settings|guide|template|examples?|placeholders?|location|path|manager|vault|store|storage|schema|type|scopes?|permissions?|for|on|about|regarding|re|in<S>the<S>(?:readme|wiki|docs)|section|file<S>(?:format|layout)|checklist|step)\b",
            ),
            negation: regex(
                r"(?:\bnever|\bnot|n't|\bdont|\bavoid(?:s|ing)?|\bprevent(?:s|ing)?|\brefuses?<S>to|\bwithout|\bagainst|\bblock(?:s|ing)?|\bdetect(?:s|ing)?|\bcannot|\bno<S>one<S>should|\bmust<S>not|\bshould<S>not|\bnobody<S>should)<S>(?:ever<S>)?(?:[a-z]+<S>)?(?:to<S>)?$",
            ),
        }
    }

    /// Injection signals for one normalised text (character-level evasion
    /// signals are added by the caller).
    pub fn signals(&self, n: &Normalized) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut hits = self.rules.hits(&n.norm);
        hits.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        hits.retain(|h| {
            !(META.contains(&h.name)
                && n.norm.get(h.end..).is_some_and(|rest| {
                    let mut end = rest.len().min(48);
                    while end < rest.len() && !rest.is_char_boundary(end) {
                        end += 1;
                    }
                    self.meta_suffix.is_match(&rest.as_bytes()[..end])
                }))
        });
        let mut names: Vec<(&'static str, f32)> = hits.iter().map(|h| (h.name, h.weight)).collect();
        if !hits.is_empty() {
            let strong = self.strong_discussion.is_match(n.words.as_bytes());
            let weak = !strong && self.weak_discussion.is_match(n.words.as_bytes());
            let spans = if strong || weak {
                quoted_spans(&self.quotes, &n.norm)
            } else {
                Vec::new()
            };
            let mut discounted = 0usize;
            for h in &hits {
                let quoted = inside(&spans, h.start, h.end);
                let negated = NEGATABLE.contains(&h.name) && {
                    let mut from = h.start.saturating_sub(40);
                    while from > 0 && !n.norm.is_char_boundary(from) {
                        from -= 1;
                    }
                    self.negation.is_match(&n.norm.as_bytes()[from..h.start])
                };
                let discount = strong || (weak && quoted) || negated;
                let weight = if discount {
                    discounted += 1;
                    if discounted == 1 {
                        h.weight * 0.3
                    } else {
                        h.weight * 0.1
                    }
                } else {
                    h.weight
                };
                out.push(Signal {
                    name: h.name.to_string(),
                    weight,
                    evidence: excerpt_at(&n.norm, h.start, h.end),
                });
            }
        }
        if n.leet_folded {
            for h in self.rules.hits(&n.words) {
                if !names.iter().any(|&(nm, w)| nm == h.name && w >= h.weight) {
                    names.push((h.name, h.weight));
                    out.push(Signal {
                        name: h.name.to_string(),
                        weight: h.weight,
                        evidence: excerpt_at(&n.words, h.start, h.end),
                    });
                    out.push(Signal {
                        name: "evasion.leetspeak".to_string(),
                        weight: 0.3,
                        evidence: excerpt_at(&n.words, h.start, h.end),
                    });
                }
            }
        }
        if self.compact.is_match(&n.compact) {
            for h in self.compact.hits(&n.compact) {
                if !names.iter().any(|&(nm, w)| nm == h.name && w >= h.weight) {
                    names.push((h.name, h.weight));
                    out.push(Signal {
                        name: h.name.to_string(),
                        weight: h.weight,
                        evidence: excerpt_at(&n.compact, h.start, h.end),
                    });
                    out.push(Signal {
                        name: "evasion.split_words".to_string(),
                        weight: 0.3,
                        evidence: excerpt_at(&n.compact, h.start, h.end),
                    });
                }
            }
        }
        out
    }
}
