//! What the simulated people write: organisation and member names, plans,
//! pledges, comments, problems and citations, drawn from phrases a food and
//! drug administration's campaign would use.
//!
//! Every text is drawn from its own generator, seeded from the demo's seed
//! and what the text is for (which unit, which round), so the texts do not
//! depend on the order commands run in.

/// A generator for one purpose: `parts` name it (a kind tag, a unit's
/// index, a round), mixed into the seed with SplitMix64 steps.
pub(crate) fn rng_for(seed: u64, parts: &[u64]) -> fastrand::Rng {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for part in parts {
        state = splitmix(state ^ part.wrapping_mul(0xA24B_AED4_963E_E407));
    }
    fastrand::Rng::with_seed(state)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks one of `items`.
pub(crate) fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items
        .get(rng.usize(..items.len().max(1)))
        .copied()
        .unwrap_or("")
}

/// The grassroots organisations of a prefecture's food and drug
/// administration, in Chinese and English.
const ORGANISATIONS: &[(&str, &str)] = &[
    ("局办公室党支部", "Bureau office branch"),
    ("政策法规科党支部", "Policy and regulations section branch"),
    (
        "食品安全监管科党支部",
        "Food safety supervision section branch",
    ),
    (
        "药品安全监管科党支部",
        "Drug safety supervision section branch",
    ),
    ("医疗器械监管科党支部", "Medical devices section branch"),
    (
        "餐饮服务监管科党支部",
        "Catering supervision section branch",
    ),
    ("稽查支队党支部", "Inspection detachment branch"),
    ("行政审批服务窗口党支部", "Licensing service window branch"),
    ("药品检验所党支部", "Drug testing institute branch"),
    ("食品检验检测中心党支部", "Food testing centre branch"),
    (
        "保健食品化妆品监管科党支部",
        "Health foods and cosmetics section branch",
    ),
    ("信息中心党支部", "Information centre branch"),
    ("人事教育科党支部", "Personnel and training section branch"),
    ("机关后勤服务中心党支部", "Logistics service centre branch"),
    ("城区分局党支部", "Urban district sub-bureau branch"),
    ("离退休干部党支部", "Retired cadres' branch"),
];

/// The name of organisation `index` (from 0): the bureau's own units
/// first, then numbered branches.
pub(crate) fn organisation_name(index: usize) -> (String, String) {
    match ORGANISATIONS.get(index) {
        Some((zh, en)) => ((*zh).to_owned(), (*en).to_owned()),
        None => {
            let n = index + 1;
            (format!("第{n}党支部"), format!("Branch no. {n}"))
        }
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
];

const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建国", "建华", "志强", "晓东", "海燕", "玉兰", "国庆",
    "红梅", "文", "斌", "宇", "欣", "婷", "浩", "鹏", "晨", "雪", "颖", "立新", "春梅", "德胜",
    "丽华", "振华", "淑珍", "永刚", "思远",
];

/// A member's name.
pub(crate) fn person_name(rng: &mut fastrand::Rng) -> String {
    format!("{}{}", pick(rng, SURNAMES), pick(rng, GIVEN))
}

const PLAN_AIMS: &[&str] = &[
    "以“五个好”为目标，建设学习型、服务型、创新型党组织",
    "围绕保障人民群众饮食用药安全，争创群众满意的基层党组织",
    "把创先争优与日常监管工作结合起来，做到两手抓、两不误",
];

const PLAN_MEASURES: &[&str] = &[
    "每月开展一次集中学习，党员参学率不低于95%",
    "公开服务承诺和办事流程，设立党员示范岗",
    "对辖区重点企业开展全覆盖监督检查，建立问题台账",
    "开展“一名党员一面旗”活动，党员亮身份、作表率",
    "落实首问负责、限时办结制度，办结率达到100%",
    "每季度听取一次服务对象意见，及时整改反馈",
    "建立党员联系群众制度，每名党员联系一家企业",
];

/// An organisation's implementation plan for a round.
pub(crate) fn plan(rng: &mut fastrand::Rng, organisation: &str, round: i64) -> String {
    let aim = pick(rng, PLAN_AIMS);
    let first = pick(rng, PLAN_MEASURES);
    let mut second = pick(rng, PLAN_MEASURES);
    if second == first {
        second = PLAN_MEASURES[0];
    }
    let extra = if round > 1 {
        "；四、对照整改问题逐条落实，巩固整改成果"
    } else {
        ""
    };
    format!(
        "{organisation}创先争优实施方案（第{round}轮）：一、{aim}；二、{first}；三、{second}{extra}。"
    )
}

const PLEDGES: &[&str] = &[
    "认真学习党的理论和食品药品法律法规，全年参加业务培训不少于{n}学时",
    "本岗位业务零差错，承办事项按时办结率达到100%",
    "对群众来访来电做到首问负责、一次告知，全年不发生有效投诉",
    "严格遵守廉洁自律各项规定，不收受管理对象任何礼品礼金",
    "敢于同违法违规行为作斗争，参加志愿服务不少于{m}次",
    "每月深入监管对象开展检查不少于{m}次，发现问题跟踪到底",
    "主动公开办事程序和时限，提供预约和延时服务",
    "带头钻研检验检测新方法，完成{m}项技术攻关或质量改进",
];

/// A member's public pledge.
pub(crate) fn pledge(rng: &mut fastrand::Rng, round: i64) -> String {
    let mut chosen: Vec<usize> = Vec::with_capacity(3);
    while chosen.len() < 3 {
        let index = rng.usize(..PLEDGES.len());
        if !chosen.contains(&index) {
            chosen.push(index);
        }
    }
    let hours = rng.u32(4..9) * 10;
    let times = rng.u32(4..13);
    let clauses: Vec<String> = chosen
        .iter()
        .filter_map(|index| PLEDGES.get(*index))
        .map(|clause| {
            clause
                .replace("{n}", &hours.to_string())
                .replace("{m}", &times.to_string())
        })
        .collect();
    let again = if round > 1 {
        "针对评议中指出的不足，"
    } else {
        ""
    };
    format!("我承诺：{again}{}。", clauses.join("；"))
}

const AFFIRM: &[&str] = &[
    "肯定了在落实监管责任、服务群众方面取得的成绩",
    "肯定了学习教育扎实、承诺事项推进有力",
    "肯定了窗口服务规范、群众评价较好",
    "肯定了团结协作、攻坚克难的精神",
];

const CRITIQUE: &[&str] = &[
    "指出承诺事项还不够具体、可考核",
    "指出日常监督检查记录不够完整",
    "指出联系服务对象还不够经常",
    "指出学习与业务结合还不够紧密",
];

const DIRECTION: &[&str] = &[
    "希望对照“五个好”查找差距、持续改进",
    "要求把承诺落实到每一项具体工作中",
    "希望进一步公开办事流程，接受群众监督",
    "要求以群众满意为标准，抓好整改落实",
];

/// A leadership comment.
pub(crate) fn comment(rng: &mut fastrand::Rng) -> String {
    format!(
        "{}，{}，{}。",
        pick(rng, AFFIRM),
        pick(rng, CRITIQUE),
        pick(rng, DIRECTION)
    )
}

const REMARKS: &[&str] = &[
    "服务热情，办事效率高",
    "希望进一步缩短办事等候时间",
    "检查认真细致，指导到位",
    "承诺公开透明，群众看得见",
    "建议多开展政策宣传",
];

/// An evaluator's remark, or none (most evaluators give only scores).
pub(crate) fn remark(rng: &mut fastrand::Rng) -> Option<&'static str> {
    (rng.u32(..5) == 0).then(|| pick(rng, REMARKS))
}

const ORGANISATION_PROBLEMS: &[&str] = &[
    "群众反映办事窗口等候时间较长",
    "日常监督检查记录不完整，问题台账未闭环",
    "承诺事项公开不及时，群众监督渠道不畅",
    "学习制度落实不到位，部分党员参学率偏低",
    "投诉举报处理回复超过规定时限",
    "廉政风险点排查不全面，防控措施不具体",
    "联系服务企业不经常，帮扶措施落实不够",
];

const MEMBER_PROBLEMS: &[&str] = &[
    "业务学习笔记不全，培训学时未达到承诺",
    "服务态度生硬，群众有意见",
    "承诺事项进度滞后",
    "考勤纪律执行不严",
    "检查发现问题后跟踪督促不够",
    "参加志愿服务次数未达到承诺",
];

/// A problem named in rectification.
pub(crate) fn problem(rng: &mut fastrand::Rng, organisation: bool) -> &'static str {
    pick(
        rng,
        if organisation {
            ORGANISATION_PROBLEMS
        } else {
            MEMBER_PROBLEMS
        },
    )
}

const FIXES: &[&str] = &[
    "已制定整改措施并落实到位，经督查核实销号",
    "已建立长效制度，群众回访满意",
    "已补齐台账和记录，复查合格",
    "已完成整改并在支部会上通报",
];

/// How a problem was fixed.
pub(crate) fn fix(rng: &mut fastrand::Rng) -> &'static str {
    pick(rng, FIXES)
}

const ORGANISATION_DEEDS: &[&str] = &[
    "坚持把创先争优融入食品药品监管工作，监管责任落实有力",
    "公开承诺全部兑现，服务窗口群众满意度持续提升",
    "组织开展专项整治，辖区食品药品安全形势稳定向好",
];

const MEMBER_DEEDS: &[&str] = &[
    "立足岗位作表率，承诺事项全部兑现",
    "在专项检查中敢于碰硬，查处案件依法规范",
    "热情服务群众，全年无投诉，多次受到群众表扬",
    "刻苦钻研业务，带头完成检验检测技术攻关",
];

/// An organisation's citation.
pub(crate) fn organisation_citation(
    rng: &mut fastrand::Rng,
    name: &str,
    mean: f64,
    satisfied: f64,
) -> String {
    format!(
        "{name}{}，“五个好”群众评议平均{mean:.1}分，满意率{:.0}%，评为先进基层党组织。",
        pick(rng, ORGANISATION_DEEDS),
        satisfied * 100.0
    )
}

/// A member's citation.
pub(crate) fn member_citation(
    rng: &mut fastrand::Rng,
    name: &str,
    mean: f64,
    satisfied: f64,
) -> String {
    format!(
        "{name}同志{}，“五带头”评议平均{mean:.1}分，满意率{:.0}%，评为优秀共产党员。",
        pick(rng, MEMBER_DEEDS),
        satisfied * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_depend_only_on_the_seed_and_their_purpose() {
        let a = pledge(&mut rng_for(7, &[1, 2, 1]), 1);
        let b = pledge(&mut rng_for(7, &[1, 2, 1]), 1);
        let c = pledge(&mut rng_for(7, &[1, 3, 1]), 1);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("我承诺："), "{a}");
    }

    #[test]
    fn organisations_beyond_the_list_are_numbered() {
        assert_eq!(organisation_name(0).1, "Bureau office branch");
        assert_eq!(organisation_name(99).0, "第100党支部");
    }
}
